"""The DPO speed benchmark's lit_rlhf side, reduced to one warm-up and two timed steps in a fresh process: the
table it prints and the JSON it writes (CI has no TRL virtualenv, hence ``--skip-trl``); and the pairs TRL is given
as text carry lit_rlhf's token ids."""

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).parents[1] / "benchmarks" / "bench_dpo.py"
ROW = re.compile(r"^lit_dpo +(\d+\.\d{3}) +(\d+\.\d{3}) +(\d+\.\d{3}) +AdamW\(fused=", re.M)


@pytest.mark.slow  # a fresh process with a Lightning fit of three tiny steps
def test_lit_side_of_the_dpo_benchmark(tmp_path):
    out = tmp_path / "bench_dpo.json"
    args = ["--skip-trl", "--repeats", "1", "--iterations", "2", "--warmup", "1", "--out", str(out)]
    done = subprocess.run([sys.executable, str(BENCH), *args], capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    (row,) = [[float(x) for x in m.groups()] for m in ROW.finditer(done.stdout)]
    assert 0 < row[0] < 30 and 0 < row[1] < 30 and row[2] == row[0]  # one repeat: its median is the run's
    assert "TRL not run: --skip-trl" in done.stdout and "lit_rlhf / TRL" not in done.stdout
    report = json.loads(out.read_text())
    assert report["command"] == shlex.join(["python", "benchmarks/bench_dpo.py", *args])
    (point,) = report["points"]
    (run,) = point["runs"]
    assert point["variant"] == "lit_dpo" and run["optimizer_steps"] == 3 and len(run["iter_cpu_times"]) == 2
    assert report["ratios_lit_over_trl"] == {} and report["workload"]["pairs_per_step"] == 16


def test_the_text_trl_is_given_tokenizes_to_lit_rlhfs_ids(tmp_path):
    sys.path.insert(0, str(BENCH.parent))
    import bench_dpo

    from lit_rlhf.models import build_policy

    bench_dpo.write_workload(tmp_path, steps=1)
    pairs = json.loads((tmp_path / "pairs.json").read_text())
    assert len(pairs) == bench_dpo.PAIRS
    tokenizer = build_policy(str(tmp_path / "policy"))[1]
    for pair in pairs:  # what the TRL side does with its own tokenizer: prompt, then " answer" and EOS
        prompt = tokenizer.decode(pair["chosen_ids"][: pair["chosen_prompt_len"]])
        for side in ("chosen", "rejected"):
            answer = pair[f"{side}_ids"][pair[f"{side}_prompt_len"] :]
            text = prompt + " " + tokenizer.decode([t for t in answer if t != tokenizer.eos_token_id])
            assert tokenizer(text + tokenizer.eos_token)["input_ids"] == pair[f"{side}_ids"]
