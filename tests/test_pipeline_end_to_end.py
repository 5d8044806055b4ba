"""The whole pipeline, shrunk: SFT -> preferences -> reward model -> PPO -> DPO -> evaluation report,
each stage reading the previous stage's files; then resume, staleness and an ablation's reward-model variant."""

import json

import pytest

from lit_rlhf.pipeline import run_pipeline

TINY_MODEL = "model.tiny={hidden_size: 32, num_layers: 1, num_heads: 2, intermediate_size: 64}"
FEW_BATCHES = ["trainer.max_epochs=1", "+trainer.limit_train_batches=2", "logger=none"]
PPO_SMALL = [
    "experiment=gym_ppo",
    *FEW_BATCHES,
    "ppo.categories=[harmful]",
    "ppo.prompts_per_iteration=4",
    "ppo.prompt_filter.k=2",
    "module.config.max_new_tokens=4",
    "ppo.eval.samples_per_prompt=1",
    "ppo.eval.max_new_tokens=4",
    "data.batch_size=4",
    "trainer.enable_checkpointing=false",
    "callbacks=none",
]
SMALL_PLAN = [
    {
        "name": "sft",
        "overrides": [
            "experiment=gym_sft",
            "debug=fast",
            "logger=none",
            TINY_MODEL,
            "sft.eval.samples_per_prompt=1",
            "sft.eval.max_new_tokens=4",
        ],
    },
    {
        "name": "preferences",
        "needs": ["sft"],
        "overrides": [
            "experiment=gym_preferences",
            "preferences.prompts.max_per_category=8",
            "preferences.k=3",
            "preferences.decoding.max_new_tokens=6",
            "preferences.save_hf=false",
        ],
    },
    {
        "name": "reward_model",
        "needs": ["preferences"],
        "overrides": [
            "experiment=gym_reward_model",
            "data=preferences",
            "model=reward_sft",
            "debug=fast",
            "logger=none",
            "data.batch_size=4",
        ],
    },
    {"name": "ppo", "needs": ["sft", "reward_model"], "overrides": PPO_SMALL},
    {
        "name": "dpo",
        "needs": ["sft", "reward_model"],
        "overrides": [
            "experiment=gym_dpo",
            *FEW_BATCHES,
            "dpo.pairs.categories=[harmful]",
            "dpo.pairs.n=2",
            "dpo.pairs.decoding.max_new_tokens=4",
            "dpo.eval.samples_per_prompt=1",
            "dpo.eval.max_new_tokens=4",
            "dpo.data.batch_size=4",
            "trainer.enable_checkpointing=false",
            "data.batch_size=4",
        ],
    },
    {
        "name": "eval",
        "needs": ["sft", "reward_model", "ppo", "dpo"],
        "overrides": [
            "experiment=gym_eval",
            "eval.samples_per_prompt=1",
            "eval.max_new_tokens=4",
            "~eval.candidates",
            "+eval.candidates={ppo: ${paths.artifacts}/ppo/checkpoint, dpo: ${paths.artifacts}/dpo/checkpoint}",
        ],
    },
]


@pytest.mark.slow
def test_small_pipeline_writes_the_report_resumes_and_reruns_stale_stages(tmp_path):
    overrides = [f"paths.artifacts={tmp_path}"]
    first = run_pipeline(overrides, plan=SMALL_PLAN)
    assert not any(first[s["name"]].get("skipped") is True for s in SMALL_PLAN)
    report = (tmp_path / "eval" / "report.md").read_text()
    assert "### ppo vs sft" in report and "### dpo vs sft" in report and "## Reward model" in report
    results = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert set(results["pairwise"]) == {"ppo", "dpo"} and results["reward_model"]["heldout"]["pairs"] > 0
    # gym_ppo's reward: the reward model and its length part, each logged
    assert {"reward/part/reward_model", "reward/part/length"} <= set(first["ppo"]["train_metrics"])

    again = run_pipeline(overrides, plan=SMALL_PLAN)  # everything done: a resumed pipeline skips it all
    assert all(again[s["name"]].get("skipped") is True for s in SMALL_PLAN)

    forced = run_pipeline(overrides, force=["ppo"], plan=SMALL_PLAN)
    assert "checkpoint" in forced["ppo"] and "pairwise" in forced["eval"]  # eval needs ppo: stale, so re-run
    assert forced["dpo"].get("skipped") is True and forced["sft"].get("skipped") is True

    # An ablation whose reward model is a variant trains that variant first, then PPO against it.
    variant = run_pipeline(overrides + ["ablation=no_score_prior"], only=["ppo"], plan=SMALL_PLAN)
    rm_dir = tmp_path / "reward_model" / "ablation" / "no_score_prior"
    assert variant["ppo"]["reward_model"] == str(rm_dir / "checkpoint")
    assert (rm_dir / "results.json").exists() and (tmp_path / "ppo" / "ablation" / "no_score_prior").exists()


def test_a_plan_that_needs_a_later_stage_is_rejected(tmp_path):
    from lit_rlhf.pipeline import stage_plan

    bad = tmp_path / "pipeline.yaml"
    bad.write_text("stages:\n  - {name: a, needs: [b]}\n  - {name: b}\n")
    with pytest.raises(ValueError, match=r"stages\[0\] \(a\) needs \['b'\]"):
        stage_plan(bad)
