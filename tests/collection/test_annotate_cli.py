import json

from lit_rlhf.cli.annotate import main
from lit_rlhf.collection.io import read_preferences
from lit_rlhf.collection.storage import AnnotationStore


def test_add_label_and_export(tmp_path, capsys):
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps({"prompt": f"q{i}", "response_a": "short", "response_b": "a longer one",
                                         "category": "math"}) + "\n" for i in range(3)))
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
