"""Held out means held out: no prompt the evaluation scores is trained on by any stage of the pipeline,
whatever the training seeds, on the default gym and on a fresh one."""

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from lit_rlhf.evaluation.heldout import provenance_overlap, trained_gym_prompts
from lit_rlhf.run import compose, stage_plan

ABLATIONS = sorted(p.stem for p in (Path(__file__).parents[1] / "conf" / "ablation").glob("*.yaml"))


def _plan_configs(tmp_path, extra: list[str]):
    """Every stage of the pipeline plan, every PPO ablation and the reward models those ablations train."""
    common = [f"paths.artifacts={tmp_path}", *extra]
    configs = {s["name"]: compose([*s.get("overrides", []), *common]) for s in stage_plan()}
    for ablation in ABLATIONS:
        ppo = compose(["experiment=gym_ppo", f"ablation={ablation}", *common])
        configs[f"ppo ablation={ablation}"] = ppo
        if ppo.ppo.get("reward_model_overrides"):
            plan = {s["name"]: s for s in stage_plan()}
            rm = compose([*plan["reward_model"]["overrides"], *common, *ppo.ppo.reward_model_overrides])
            configs[f"reward model of ablation={ablation}"] = rm
    return configs


@pytest.mark.parametrize("extra", [[], ["gym.seed=3"]], ids=["default gym", "gym.seed=3"])
def test_no_stage_trains_on_the_prompts_the_evaluation_scores(tmp_path, extra):
    configs = _plan_configs(tmp_path, extra)
    eval_cfg = configs.pop("eval")
    from hydra.utils import instantiate

    scored = {p.text for p in instantiate(eval_cfg.gym).prompts(eval_cfg.eval.split)}
    assert len(scored) > 50
    seen_sources = set()
    for name, cfg in configs.items():
        for source, texts in trained_gym_prompts(cfg).items():
            seen_sources.add(source)
            assert texts, f"{name}: {source} is empty"
            assert not texts & scored, f"{name}: {source} trains on {len(texts & scored)} evaluated prompts"
    # every kind of training input was looked at (so an empty check cannot pass by finding nothing)
    assert {"data.train", "preferences.prompts", "ppo.prompts", "dpo.pairs"} <= seen_sources


def test_training_seeds_do_not_move_the_split_and_the_gym_seed_does(tmp_path):
    configs = _plan_configs(tmp_path, [])
    ppo_prompts = [trained_gym_prompts(configs[n])["ppo.prompts"] for n in ("ppo", "ppo_seed1", "ppo_seed2")]
    assert ppo_prompts[0] == ppo_prompts[1] == ppo_prompts[2]
    fresh = _plan_configs(tmp_path, ["gym.seed=3"])
    assert trained_gym_prompts(fresh["ppo"])["ppo.prompts"] != ppo_prompts[0]
    # every stage of a fresh gym agrees on it
    assert {int(cfg.gym.seed) for cfg in fresh.values()} == {3}


def test_evaluation_refuses_a_run_that_trained_on_its_prompts(tmp_path):
    """The eval stage follows each checkpoint's config.yaml (and the runs it read) to the prompts they trained on."""
    configs = _plan_configs(tmp_path, [])
    from hydra.utils import instantiate

    scored = [p.text for p in instantiate(configs["eval"].gym).prompts("test")]
    for name in ("sft", "preferences", "reward_model", "ppo"):
        run = Path(configs[name].output_dir)
        run.mkdir(parents=True, exist_ok=True)
        (run / "config.yaml").write_text(OmegaConf.to_yaml(configs[name], resolve=True))
        (run / "checkpoint").mkdir(exist_ok=True)
    (tmp_path / "preferences" / "preferences.jsonl").write_text("")
    assert provenance_overlap(tmp_path / "ppo", scored) == {}
    # an SFT run on another gym's split, read by PPO through model.source: found two runs up the chain
    moved = compose(["experiment=gym_sft", f"paths.artifacts={tmp_path}", "gym.seed=1"])
    (tmp_path / "sft" / "config.yaml").write_text(OmegaConf.to_yaml(moved, resolve=True))
    overlap = provenance_overlap(tmp_path / "ppo", scored)
    assert list(overlap) == [f"{tmp_path / 'sft'}: data.train"] and overlap[f"{tmp_path / 'sft'}: data.train"] > 10
    from lit_rlhf.evaluation.stage import check_held_out

    with pytest.raises(ValueError, match="not held out"):
        check_held_out({"ppo": [str(tmp_path / "ppo" / "checkpoint")]}, scored, "the gym's test split")
