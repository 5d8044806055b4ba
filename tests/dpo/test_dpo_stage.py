"""The DPO stage end to end on tiny checkpoints: pairs file, reference cache, training, checkpoint, gold comparison."""

import json

from hydra.utils import instantiate
from omegaconf import OmegaConf

from lit_rlhf.dpo.config import DPOConfig
from lit_rlhf.dpo.stage import build_pairs, run
from lit_rlhf.models import build_policy, save_hf_checkpoint
from lit_rlhf.reward.model import RewardModel, build_reward_model

TINY = {"hidden_size": 32, "num_layers": 1, "num_heads": 2, "intermediate_size": 64}

SMALL = [
    "experiment=gym_dpo",
    "dpo.pairs.categories=[harmful]",
    "dpo.pairs.n=2",
    "dpo.pairs.decoding.max_new_tokens=6",
    "dpo.eval.samples_per_prompt=1",
    "dpo.eval.max_new_tokens=4",
    "dpo.data.batch_size=4",
    "trainer.max_epochs=1",
    "+trainer.limit_train_batches=2",
    "+trainer.limit_val_batches=1",
    "trainer.enable_checkpointing=false",
    "logger=none",
    "data.train.per_prompt=1",
    "data.batch_size=4",
]


def test_experiment_composes_into_the_dpo_config(compose_config):
    cfg = compose_config("experiment=gym_dpo")
    assert cfg.stage == "dpo" and str(cfg.model.source).endswith("sft/checkpoint")
    assert str(cfg.dpo.pairs.reward_model).endswith("reward_model/checkpoint")
    config = OmegaConf.to_object(cfg.module.config)
    assert isinstance(config, DPOConfig) and config.ntp_coef > 0


def test_stage_runs_end_to_end_and_reuses_its_pairs(compose_config, tmp_path):
    model, tokenizer = build_policy("embedded", seed=0, tiny=TINY)
    save_hf_checkpoint(model, tokenizer, tmp_path / "sft" / "checkpoint")
    reward_model, reward_tokenizer = build_reward_model(seed=0, tiny=TINY)
    RewardModel(reward_model, reward_tokenizer).save(tmp_path / "reward_model" / "checkpoint")
    cfg = compose_config(*SMALL)

    summary = run(cfg)

    out = tmp_path / "dpo"
    assert json.loads((out / "results.json").read_text()) == json.loads(json.dumps(summary))
    assert (out / "pairs.jsonl").exists() and summary["pairs"]["reused"] is False
    assert summary["pairs"]["n"] + sum(summary["pairs"]["skipped"].values()) == 42  # every harmful train prompt
    assert build_policy(str(out / "checkpoint"))[0].config.hidden_size == TINY["hidden_size"]
    table = summary["vs_sft"]["win_tie_loss"]["all"]
    assert table["n"] == 87 and abs(table["win"] + table["tie"] + table["loss"] - 1) < 1e-9
    assert set(summary["response_words"]) == {"dpo", "sft"}
    assert "dpo/reward_margin" in summary["train_metrics"] and "ntp/loss" in summary["train_metrics"]

    rows, report = build_pairs(
        cfg.dpo.pairs, None, None, instantiate(cfg.gym), out, int(cfg.seed), str(cfg.model.source)
    )
    assert report["reused"] is True and len(rows) == summary["pairs"]["n"]


def test_the_validation_split_holds_out_whole_prompts():
    import random

    from lit_rlhf.dpo.data import split_by_prompt

    rows = [{"prompt": f"p{i % 10}", "chosen": f"a{i}", "rejected": f"b{i}"} for i in range(40)]  # 4 pairs a prompt
    val, train = split_by_prompt(rows, 0.2, seed=0)
    assert len(val) == 8 and len(train) == 32
    assert not {r["prompt"] for r in val} & {r["prompt"] for r in train}
    # one pair per prompt: exactly the shuffle of pairs it replaces, so earlier runs reproduce
    single = rows[:10]
    shuffled = single[:]
    random.Random("0:dpo-val-split").shuffle(shuffled)
    assert split_by_prompt(single, 0.2, seed=0) == (shuffled[:2], shuffled[2:])
