import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from fastapi.testclient import TestClient  # noqa: E402

from lit_rlhf.collection.pairs import Comparison  # noqa: E402
from lit_rlhf.collection.server import AnnotationServer, create_app  # noqa: E402
from lit_rlhf.collection.storage import AnnotationStore  # noqa: E402

R = {"helpfulness": 3, "harmlessness": 5, "fluency": 4}


@pytest.fixture
def store(tmp_path):
    s = AnnotationStore(tmp_path / "ann.sqlite", labels_per_pair=2)
    s.add_pairs([Comparison(f"p{i}", f"what is {i} plus 1 ?", "math", f"the answer is {i + 1} .", "no idea .")
                 for i in range(3)])
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


@pytest.mark.parametrize("body, status, message", [
    ({"pair_id": "nope", "annotator": "ann", "choice": "left"}, 404, "unknown pair"),
    ({"pair_id": "p0", "annotator": "stranger", "choice": "left"}, 409, "never shown"),
    ({"pair_id": "p0", "annotator": "ann", "choice": "A"}, 422, "choice"),
    ({"pair_id": "p0", "annotator": "ann", "choice": "left", "ratings_left": {"helpfulness": 7}}, 422, "criteria"),
    ({"pair_id": "p0", "annotator": "ann"}, 422, "choice"),
])
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
