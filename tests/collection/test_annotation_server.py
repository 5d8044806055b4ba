import json

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from fastapi.testclient import TestClient  # noqa: E402

from lit_rlhf.collection.response_pairs import Comparison  # noqa: E402
from lit_rlhf.collection.server import AnnotationServer, create_app, serving_mode  # noqa: E402
from lit_rlhf.collection.storage import AnnotationStore  # noqa: E402

R = {"helpfulness": 3, "harmlessness": 5, "fluency": 4}


@pytest.fixture
def store(tmp_path):
    s = AnnotationStore(tmp_path / "ann.sqlite", labels_per_pair=2)
    s.add_pairs(
        [
            Comparison(f"p{i}", f"what is {i} plus 1 ?", "math", f"the answer is {i + 1} .", "no idea .")
            for i in range(3)
        ]
    )
    yield s
    s.close()


@pytest.fixture
def client(store):
    return TestClient(create_app(store))


def test_page_and_label_round_trip(client, store):
    assert "Which response is better?" in client.get("/").text
    item = client.get("/api/next", params={"annotator": "ann"}).json()
    assert set(item) >= {"pair_id", "prompt", "left", "right", "shown_order", "progress"}
    body = {"pair_id": item["pair_id"], "annotator": "ann", "choice": "right", "ratings_left": R, "ratings_right": R}
    first = client.post("/api/labels", json=body)
    assert first.status_code == 201 and first.json() == {"status": "stored"}
    again = client.post("/api/labels", json=body)
    assert again.status_code == 200 and again.json() == {"status": "duplicate"}
    changed = client.post("/api/labels", json={**body, "choice": "tie"})
    assert changed.status_code == 409 and "already labelled" in changed.json()["detail"]
    assert len(store.votes()) == 1
    assert client.get("/api/progress", params={"annotator": "ann"}).json()["done_by_annotator"] == 1


@pytest.mark.parametrize(
    "body, status, message",
    [
        ({"pair_id": "nope", "annotator": "ann", "choice": "left"}, 404, "unknown pair"),
        ({"pair_id": "p0", "annotator": "stranger", "choice": "left"}, 409, "never shown"),
        ({"pair_id": "p0", "annotator": "ann", "choice": "A"}, 422, "choice"),
        ({"pair_id": "p0", "annotator": "ann", "choice": "left", "ratings_left": {"helpfulness": 7}}, 422, "criteria"),
        ({"pair_id": "p0", "annotator": "ann"}, 422, "choice"),
    ],
)
def test_bad_submissions_are_refused_clearly(client, store, body, status, message):
    client.get("/api/next", params={"annotator": "ann"})  # p0 is served to "ann"
    response = client.post("/api/labels", json=body)
    assert response.status_code == status
    assert message in str(response.json()["detail"])
    assert store.votes() == []


def test_done_when_nothing_is_left(client):
    while not (item := client.get("/api/next", params={"annotator": "ann"}).json()).get("done"):
        client.post("/api/labels", json={"pair_id": item["pair_id"], "annotator": "ann", "choice": "tie"})
    assert item["progress"]["done_by_annotator"] == 3


def test_background_server_starts_and_stops_cleanly(store):
    import httpx

    server = AnnotationServer(store).start()
    try:
        assert httpx.get(server.url + "/api/health").json() == {"ok": True}
    finally:
        server.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(server.url + "/api/health", timeout=2)
    server.stop()  # twice is fine


def label_body(pair_id: str, **change) -> dict:
    return {"pair_id": pair_id, "choice": "left", "ratings_left": R, "ratings_right": R, **change}


@pytest.mark.parametrize(
    "change, field",
    [
        ({"ratings_left": {**R, "fluency": True}}, "ratings_left.fluency"),
        ({"ratings_left": {**R, "fluency": "4"}}, "ratings_left.fluency"),
        ({"ratings_right": {**R, "helpfulness": 4.0}}, "ratings_right.helpfulness"),
        ({"pair_id": 0}, "pair_id"),
        ({"choice": ["left"]}, "choice"),
        ({"annotator": 7}, "annotator"),
        ({"comment": "great"}, "comment"),  # an unknown field is refused, not dropped
    ],
)
def test_fields_have_strict_types_and_a_refusal_names_the_field(client, store, change, field):
    item = client.get("/api/next", params={"annotator": "ann"}).json()
    response = client.post("/api/labels", json=label_body(item["pair_id"], annotator="ann") | change)
    assert response.status_code == 422
    assert response.json()["detail"].startswith(f"{field}:"), response.json()
    assert store.votes() == []


@pytest.mark.parametrize(
    "change",
    [
        {"pair_id": "p" * 5000},
        {"choice": "x" * 5000},
        {"annotator": "y" * 5000},
        {"ratings_left": {"z" * 5000: 4}},
    ],
)
def test_long_fields_are_refused_and_never_echoed(client, store, change):
    client.get("/api/next", params={"annotator": "ann"})
    response = client.post("/api/labels", json=label_body("p0", annotator="ann") | change)
    assert response.status_code == 422 and len(response.content) < 300, response.text[:500]
    assert store.votes() == []


def test_an_unknown_pair_id_is_cut_short_in_the_404(client):
    response = client.post("/api/labels", json=label_body("q" * 200, annotator="ann"))
    assert response.status_code == 404 and "unknown pair id" in response.json()["detail"]
    assert len(response.content) < 200 and "q" * 100 not in response.text


def test_bodies_over_the_limit_are_refused(store):
    client = TestClient(create_app(store, max_body_bytes=150))
    item = client.get("/api/next", params={"annotator": "ann"}).json()
    body = label_body(item["pair_id"], annotator="ann")
    assert len(json.dumps(body, separators=(",", ":"))) > 150
    refused = client.post("/api/labels", json=body)
    assert refused.status_code == 413 and "150 bytes" in refused.json()["detail"]
    assert client.post("/api/labels", json={**body, "ratings_left": {}, "ratings_right": {}}).status_code == 201
    assert client.get("/api/next", params={"annotator": "ann", "x": "y" * 3000}).status_code == 414
    assert len(store.votes()) == 1


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def tokens(store):
    return {name: store.add_token(name) for name in ("alice", "bob")} | {"root": store.add_token("root", "admin")}


def test_with_tokens_every_call_needs_one_and_the_token_says_who_labels(client, store, tokens):
    for path in ("/api/me", "/api/next", "/api/progress", "/api/admin/votes"):
        for headers in ({}, bearer("forged"), {"Authorization": tokens["alice"]}):
            response = client.get(path, headers=headers)
            assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer"
    assert client.post("/api/labels", json=label_body("p0", annotator="alice")).status_code == 401
    assert client.get("/api/me", headers=bearer(tokens["alice"])).json() == {
        "mode": "token",
        "name": "alice",
        "role": "annotator",
    }

    item = client.get("/api/next", headers=bearer(tokens["alice"])).json()
    assert (
        client.post("/api/labels", json=label_body(item["pair_id"]), headers=bearer(tokens["alice"])).status_code == 201
    )
    assert [v.annotator for v in store.votes()] == ["alice"]
    # Naming another annotator is refused: the token decides.
    assert client.get("/api/next", params={"annotator": "bob"}, headers=bearer(tokens["alice"])).status_code == 403
    as_bob = client.post(
        "/api/labels", json=label_body(item["pair_id"], annotator="bob", choice="tie"), headers=bearer(tokens["alice"])
    )
    assert as_bob.status_code == 403 and [v.annotator for v in store.votes()] == ["alice"]
    progress = client.get("/api/progress", headers=bearer(tokens["alice"])).json()
    assert progress["done_by_annotator"] == 1


def test_no_annotator_learns_another_ones_label(client, store, tokens):
    alice, bob, root = (bearer(tokens[name]) for name in ("alice", "bob", "root"))
    item = client.get("/api/next", headers=alice).json()
    assert client.post("/api/labels", json=label_body(item["pair_id"]), headers=alice).status_code == 201
    # Bob was never shown the pair: refused, and nothing about Alice's label.
    probe = client.post("/api/labels", json=label_body(item["pair_id"], choice="tie"), headers=bob)
    assert probe.status_code == 409 and probe.json()["detail"] == (
        f"pair {item['pair_id']!r} was never shown to annotator 'bob'"
    )
    # Alice changing her mind hears only that she labelled it differently, not what she chose.
    changed = client.post("/api/labels", json=label_body(item["pair_id"], choice="tie"), headers=alice)
    assert changed.status_code == 409 and changed.json()["detail"] == (
        f"annotator 'alice' already labelled pair {item['pair_id']!r} differently; labels are final"
    )
    assert client.get("/api/admin/votes", headers=alice).status_code == 403
    (vote,) = client.get("/api/admin/votes", headers=root).json()["votes"]
    assert vote["annotator"] == "alice" and vote["pair_id"] == item["pair_id"]
    # An admin token reads but does not label.
    assert client.get("/api/next", headers=root).status_code == 403
    assert (
        client.post("/api/labels", json=label_body(item["pair_id"], annotator="root"), headers=root).status_code == 403
    )


def test_open_local_mode_serves_loopback_only_and_closes_when_a_token_is_issued(store):
    local, remote = TestClient(create_app(store)), TestClient(create_app(store), client=("203.0.113.9", 40000))
    assert local.get("/api/me").json()["mode"] == "open"
    assert remote.get("/api/next", params={"annotator": "ann"}).status_code == 403
    store.add_token("alice")
    assert local.get("/api/next", params={"annotator": "ann"}).status_code == 401


def test_serving_without_tokens_is_refused_beyond_loopback(store):
    with pytest.raises(ValueError, match="without tokens"):
        AnnotationServer(store, host="0.0.0.0").start()
    assert serving_mode(store, "127.0.0.1") == "open"
    store.add_token("alice")
    assert serving_mode(store, "0.0.0.0") == "token"  # decided only; nothing binds beyond loopback here
