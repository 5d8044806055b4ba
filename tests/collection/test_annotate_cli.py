import json
import re

import pytest

from lit_rlhf.cli.annotate import main
from lit_rlhf.collection.io import read_preferences
from lit_rlhf.collection.storage import AnnotationStore, token_digest


def test_add_label_and_export(tmp_path, capsys):
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(
        "".join(
            json.dumps({"prompt": f"q{i}", "response_a": "short", "response_b": "a longer one", "category": "math"})
            + "\n"
            for i in range(3)
        )
    )
    db = tmp_path / "ann.sqlite"
    assert main(["add-pairs", "--db", str(db), str(pairs)]) == 0
    store = AnnotationStore(db, labels_per_pair=2)
    for who in ("x", "y"):
        while (item := store.next_pair(who)) is not None:
            side = "left" if item["left"] == "a longer one" else "right"
            store.submit(item["pair_id"], who, side)
    store.close()
    assert main(["export", "--db", str(db), "--out", str(tmp_path / "out")]) == 0
    rows = read_preferences(tmp_path / "out" / "preferences.jsonl")
    assert len(rows) == 3 and all(r["chosen"] == "a longer one" and r["votes"]["chosen"] == 2 for r in rows)
    assert "pairs kept: 3 of 3" in capsys.readouterr().out


def test_errors_are_one_clear_line(tmp_path, capsys):
    bad = tmp_path / "pairs.jsonl"
    bad.write_text('{"prompt": "q"}\n')
    assert main(["add-pairs", "--db", str(tmp_path / "ann.sqlite"), str(bad)]) == 2
    assert "pairs.jsonl:1: field 'response_a'" in capsys.readouterr().err
    assert main(["export", "--db", str(tmp_path / "none.sqlite"), "--out", str(tmp_path / "o")]) == 2


def test_tokens_from_the_cli_label_through_the_served_app(tmp_path, capsys, monkeypatch):
    pytest.importorskip("fastapi")
    import uvicorn
    from fastapi.testclient import TestClient

    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(json.dumps({"prompt": "q", "response_a": "a", "response_b": "b b", "category": "math"}) + "\n")
    db = tmp_path / "ann.sqlite"
    assert main(["add-annotator", "--db", str(db), "--url", "http://10.0.0.2:9000", "alice"]) == 0
    printed = capsys.readouterr().out
    token = re.search(r"alice's page: http://10\.0\.0\.2:9000/#token=(\S+)$", printed, re.MULTILINE).group(1)
    assert f"alice: annotator token {token} " in printed
    assert main(["add-admin", "--db", str(db), "root"]) == 0
    admin = re.search(r"admin token (\S+) ", capsys.readouterr().out).group(1)
    # Only hashes are kept: the tokens appear nowhere in the database files.
    on_disk = b"".join(path.read_bytes() for path in tmp_path.glob("ann.sqlite*"))
    assert token.encode() not in on_disk and admin.encode() not in on_disk
    assert token_digest(token).encode() in on_disk

    served = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: served.update(app=app, **kwargs))
    assert main(["serve", "--db", str(db), "--pairs", str(pairs), "--host", "0.0.0.0", "--port", "9000"]) == 0
    assert "token mode: ['alice']" in capsys.readouterr().out and served["host"] == "0.0.0.0"
    client = TestClient(served["app"])
    assert client.get("/api/next").status_code == 401
    item = client.get("/api/next", headers={"Authorization": f"Bearer {token}"}).json()
    sent = client.post(
        "/api/labels", json={"pair_id": item["pair_id"], "choice": "tie"}, headers={"Authorization": f"Bearer {token}"}
    )
    assert sent.status_code == 201
    (vote,) = client.get("/api/admin/votes", headers={"Authorization": f"Bearer {admin}"}).json()["votes"]
    assert vote["annotator"] == "alice" and vote["choice"] == "tie"


def test_serving_beyond_loopback_without_tokens_is_refused_in_one_line(tmp_path, capsys, monkeypatch):
    import uvicorn

    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: pytest.fail("served without tokens on 0.0.0.0"))
    assert main(["serve", "--db", str(tmp_path / "ann.sqlite"), "--host", "0.0.0.0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("lit-rlhf-annotate: error: refusing to serve") and "add-annotator" in err
    assert len(err.splitlines()) == 1
    assert main(["add-annotator", "--db", str(tmp_path / "ann.sqlite"), "not ok"]) == 2
    assert "name 'not ok' must be" in capsys.readouterr().err
