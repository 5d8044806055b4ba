"""``python -m lit_rlhf.evaluation.probe_answers`` on a tiny saved checkpoint: counts add up to the probe samples."""

import re

import pytest

from lit_rlhf.evaluation.probe_answers import answer_counts, main
from lit_rlhf.gym import AlignmentGym
from lit_rlhf.models import build_policy
from lit_rlhf.models.builder import save_hf_checkpoint


def test_answer_counts_by_hand():
    gym = AlignmentGym(seed=0)
    ident = gym.prompts("val", ["identity"])[0]
    fmt = gym.prompts("val", ["format"])[0]
    counts = answer_counts([ident, ident, fmt], ["i do not know . ", "i do not know .", '{ "answer": "x" }'])
    assert counts["identity"] == {"i do not know .": 2} and counts["format"] == {'{ "answer": "x" }': 1}


def test_a_checkpoint_s_probe_answers_are_counted(tmp_path, capsys):
    model, tokenizer = build_policy(
        "embedded", seed=0, tiny={"hidden_size": 32, "num_layers": 1, "num_heads": 2, "intermediate_size": 64}
    )
    path = save_hf_checkpoint(model, tokenizer, tmp_path / "policy")
    assert main([str(path), "--gym-seed", "3", "--samples", "2", "--top", "2", "--max-new-tokens", "4"]) == 0
    out = capsys.readouterr().out
    gym = AlignmentGym(seed=3)
    for category in ("identity", "format"):
        held_out = len(gym.prompts("val", [category])) + len(gym.prompts("test", [category]))
        line = re.search(rf"^{category}: (\d+) answers, pass rate [0-9.]+, refusing [0-9.]+$", out, re.M)
        assert line and int(line.group(1)) == 2 * held_out


def test_a_missing_checkpoint_is_named(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main([str(tmp_path / "nowhere")])
    err = capsys.readouterr().err
    assert f"no checkpoint folder at {tmp_path / 'nowhere'}" in err
