import json

import pytest

from lit_rlhf.data.errors import DataError
from lit_rlhf.ppo.rl_prompts import read_prompts_jsonl
from lit_rlhf.ppo.stage import _rl_prompts


def write(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_prompts_are_read_with_their_category_or_all(tmp_path):
    path = write(tmp_path / "p.jsonl", [{"prompt": "write a poem .", "category": "writing"}, {"prompt": "hi ."}])
    rows = read_prompts_jsonl(path)
    assert list(rows) == [{"prompt": "write a poem .", "category": "writing"}, {"prompt": "hi .", "category": "all"}]
    assert rows.report.kept == 2 and rows.report.skipped == 0


def test_a_bad_row_names_file_line_and_field_or_is_counted(tmp_path):
    path = write(tmp_path / "p.jsonl", [{"prompt": "ok ."}, {"text": "no prompt key"}, {"prompt": "  "}])
    with pytest.raises(DataError, match=r"p.jsonl:2: field 'prompt': missing"):
        read_prompts_jsonl(path)
    bad_category = write(tmp_path / "c.jsonl", [{"prompt": "ok .", "category": 3}])
    with pytest.raises(DataError, match=r"c.jsonl:1: field 'category': expected a non-empty string"):
        read_prompts_jsonl(bad_category)
    rows = read_prompts_jsonl(path, on_error="skip")
    assert [r["prompt"] for r in rows] == ["ok ."]
    assert rows.report.counts == {"bad field 'prompt'": 2}
    assert rows.report.examples["bad field 'prompt'"] == [f"{path}:2", f"{path}:3"]


def test_rows_outside_the_categories_are_counted_with_their_line(tmp_path):
    path = write(tmp_path / "p.jsonl", [{"prompt": "a .", "category": "math"}, {"prompt": "b .", "category": "chat"}])
    rows = read_prompts_jsonl(path, categories=["math"])
    assert [r["prompt"] for r in rows] == ["a ."]
    assert rows.report.examples == {"category not in ['math']": [f"{path}:2"]}
    with pytest.raises(ValueError, match=r"p.jsonl: no usable prompt in the categories \['writing'\]"):
        read_prompts_jsonl(path, categories=["writing"])


def test_the_ppo_stage_takes_a_prompt_file_or_the_gym(compose_config, tmp_path):
    cfg = compose_config("experiment=gym_ppo", "debug=fast")
    reports: dict = {}
    rows, heldout, gym = _rl_prompts(cfg, reports)
    assert gym is not None and {r["category"] for r in rows} == {"math", "harmful", "writing"} and not reports
    assert heldout == []  # the gym's test split is the held-out set

    prompts = [{"prompt": f"question {i} .", "category": "math"} for i in range(9)] + [{"prompt": "b ."}, "{}"]
    path = write(tmp_path / "p.jsonl", prompts)
    cfg = compose_config(
        "experiment=gym_ppo",
        "debug=fast",
        f"ppo.prompts.path={path}",
        "ppo.categories=null",
        "ppo.prompts.on_error=skip",
    )
    rows, heldout, gym = _rl_prompts(cfg, reports)
    assert gym is None and len(rows) == 9 and len(heldout) == 1  # ppo.heldout.fraction=0.1 of 10 prompts
    assert {r["prompt"] for r in rows} | {r["prompt"] for r in heldout} == {p["prompt"] for p in prompts[:10]}
    assert reports["prompt_file"] == {
        "path": str(path),
        "kept": 10,
        "skipped": {"bad field 'prompt'": 1},
        "train": 9,
        "heldout": 1,
    }
