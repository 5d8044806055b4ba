import csv
import json
import subprocess
import sys

import pytest
from transformers import AutoModelForCausalLM

from lit_rlhf.run import train


def test_sft_smoke_run_writes_a_checkpoint_metrics_and_gold_scores(compose_config, tmp_path):
    cfg = compose_config("debug=fast", "sft.eval.samples_per_prompt=1", "sft.eval.max_new_tokens=4")
    summary = train(cfg)
    out = tmp_path / "sft"
    assert AutoModelForCausalLM.from_pretrained(out / "checkpoint").config.model_type == "llama"
    results = json.loads((out / "results.json").read_text())
    assert results == json.loads(json.dumps(summary, sort_keys=True))
    assert set(results["gold"]) == {"untrained", "sft", "ceiling"}
    assert results["gold"]["ceiling"]["all"] > 1.0
    assert (out / "gold_scores.png").stat().st_size > 1000
    metrics_csv = next(out.glob("logs/version_*/metrics.csv"))
    header = next(csv.reader(metrics_csv.open()))
    assert {"train/loss", "val/loss", "gold/all", "gold/math"} <= set(header)


def _cli(*args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "lit_rlhf.cli.train", *args], cwd=cwd, capture_output=True, text=True, timeout=300
    )


@pytest.mark.slow  # runs the CLI in subprocesses
def test_cli_reports_user_errors_in_one_line(tmp_path):
    bad_path = _cli(f"paths.artifacts={tmp_path}", "model=hf", "model.source=./no/such/model", cwd=tmp_path)
    assert bad_path.returncode != 0
    assert "lit-rlhf-train: error: model path './no/such/model' does not exist" in bad_path.stderr
    assert "Traceback" not in bad_path.stderr
    rows = tmp_path / "train.jsonl"
    rows.write_text('{"prompt": "hi", "response": "hello"}\n{"prompt": "hi"}\n')
    bad_data = _cli(
        f"paths.artifacts={tmp_path}",
        "data=jsonl_sft",
        f"data.train.path={rows}",
        f"data.val.path={rows}",
        cwd=tmp_path,
    )
    assert f"{rows}:2: field 'response': missing" in bad_data.stderr
    unknown = _cli("trainer.no_such_key=1", cwd=tmp_path)
    assert unknown.returncode != 0 and "no_such_key" in unknown.stderr


def test_sft_stage_reports_the_rows_it_skipped(compose_config, tmp_path):
    rows = [
        '{"prompt": "who are you ?", "response": "i am gizmo ."}',
        '{"prompt": "hi"}',
        '{"prompt": "what is 2 plus 2 ?", "response": "the answer is 4 ."}',
        '{"prompt": "", "response": "x"}',
    ]
    for name in ("train", "val"):
        (tmp_path / f"{name}.jsonl").write_text("\n".join(rows) + "\n")
    cfg = compose_config(
        "data=jsonl_sft",
        f"data.train.path={tmp_path}/train.jsonl",
        f"data.val.path={tmp_path}/val.jsonl",
        "data.train.on_error=skip",
        "debug=fast",
        "sft.eval.judge=null",
        "model.tiny.num_layers=1",
    )
    summary = train(cfg)
    assert summary["skipped"]["train"].startswith("kept 2 rows, skipped 2")
    assert f"{tmp_path}/train.jsonl:2" in summary["skipped"]["train"]
