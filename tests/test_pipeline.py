import pytest

from lit_rlhf.pipeline import main, run_pipeline, stage_plan

TINY_SFT = [
    "experiment=gym_sft",
    "debug=fast",
    "logger=none",
    "sft.eval.samples_per_prompt=1",
    "sft.eval.max_new_tokens=4",
]


def test_the_default_plan_runs_every_stage_in_order():
    assert [s["name"] for s in stage_plan()] == [
        "sft",
        "preferences",
        "reward_model",
        "ppo",
        "ppo_seed1",
        "ppo_seed2",
        "dpo",
        "dpo_seed1",
        "dpo_seed2",
        "eval",
    ]


def test_a_finished_stage_is_skipped_until_forced(tmp_path):
    plan = [{"name": "sft", "overrides": TINY_SFT}]
    overrides = [f"paths.artifacts={tmp_path}"]
    first = run_pipeline(overrides, plan=plan)
    assert "checkpoint" in first["sft"] and (tmp_path / "sft" / "results.json").exists()
    assert run_pipeline(overrides, plan=plan)["sft"]["skipped"] is True  # a killed pipeline resumes here
    assert "checkpoint" in run_pipeline(overrides, force=["sft"], plan=plan)["sft"]


def test_a_stage_done_with_other_settings_runs_again(tmp_path, capsys):
    """The pipeline compares the config a stage ran with (its config.yaml) with the one it would run now."""
    plan = [{"name": "sft", "overrides": TINY_SFT}]
    run_pipeline([f"paths.artifacts={tmp_path}"], plan=plan)
    saved = (tmp_path / "sft" / "config.yaml").read_text()
    assert "seed: 0" in saved and "stage: sft" in saved
    again = run_pipeline([f"paths.artifacts={tmp_path}", "gym.seed=1"], plan=plan)["sft"]
    changed = [line for line in capsys.readouterr().out.splitlines() if "changed since it ran" in line]
    assert "checkpoint" in again and len(changed) == 1 and "gym.seed" in changed[0]
    assert "seed: 1" in (tmp_path / "sft" / "config.yaml").read_text()
    assert run_pipeline([f"paths.artifacts={tmp_path}", "gym.seed=1"], plan=plan)["sft"]["skipped"] is True


def test_unknown_stage_names_are_rejected(tmp_path, capsys):
    with pytest.raises(ValueError, match="unknown pipeline stage 'rlhf'"):
        run_pipeline([f"paths.artifacts={tmp_path}"], only=["rlhf"])
    with pytest.raises(SystemExit) as exit_info:
        main(["--only", "rlhf", f"paths.artifacts={tmp_path}"])
    assert exit_info.value.code == 2 and "unknown pipeline stage" in capsys.readouterr().err
