import pytest

from lit_rlhf.pipeline import main, run_pipeline, stage_plan

TINY_SFT = ["experiment=gym_sft", "debug=fast", "logger=none", "sft.eval_samples_per_prompt=1",
            "sft.max_new_tokens=4"]


def test_the_default_plan_runs_every_stage_in_order():
    assert [s["name"] for s in stage_plan()] == ["sft", "preferences", "reward_model", "ppo", "ppo_seed1", "ppo_seed2", "dpo",
                                                "dpo_seed1", "dpo_seed2", "eval"]


def test_a_finished_stage_is_skipped_until_forced(tmp_path):
    plan = [{"name": "sft", "overrides": TINY_SFT}]
    overrides = [f"paths.artifacts={tmp_path}"]
    first = run_pipeline(overrides, plan=plan)
    assert "checkpoint" in first["sft"] and (tmp_path / "sft" / "results.json").exists()
    assert run_pipeline(overrides, plan=plan)["sft"]["skipped"] is True  # a killed pipeline resumes here
    assert "checkpoint" in run_pipeline(overrides, force=["sft"], plan=plan)["sft"]


def test_unknown_stage_names_are_rejected(tmp_path, capsys):
    with pytest.raises(ValueError, match="unknown pipeline stage 'rlhf'"):
        run_pipeline([f"paths.artifacts={tmp_path}"], only=["rlhf"])
    with pytest.raises(SystemExit) as exit_info:
        main(["--only", "rlhf", f"paths.artifacts={tmp_path}"])
    assert exit_info.value.code == 2 and "unknown pipeline stage" in capsys.readouterr().err
