import json

from hydra.utils import instantiate
from transformers import AutoModelForSequenceClassification

from lit_rlhf.reward.model import RewardModel
from lit_rlhf.run import train

SMALL = [
    "debug=fast",
    "model.tiny.num_layers=1",
    "model.tiny.hidden_size=32",
    "model.tiny.intermediate_size=64",
    "data.train.pairs_per_prompt=1",
    "data.test.pairs_per_prompt=1",
]


def test_experiment_composes_into_the_reward_model_stage(compose_config):
    cfg = compose_config("experiment=gym_reward_model", "debug=fast")
    assert cfg.stage == "reward_model"
    assert cfg.output_dir.endswith("reward_model")
    assert cfg.module.max_length == cfg.data.max_length and cfg.module.optimizer._partial_ is True


def test_config_builds_balanced_gym_data_and_the_module(compose_config):
    cfg = compose_config("experiment=gym_reward_model", *SMALL)
    model, tokenizer = instantiate(cfg.model)
    dm = instantiate(cfg.data, tokenizer=tokenizer)
    module = instantiate(cfg.module, model=model, tokenizer=tokenizer)
    dm.setup("fit")
    assert dm.balance_report is not None and len(dm.train_set) < len(dm.train_rows)
    assert module.prior_coef == cfg.module.prior_coef and dm.skip_reports["train"].kept == len(dm.train_rows)
    unbalanced = instantiate(
        compose_config("experiment=gym_reward_model", "data.length_balance=null").data, tokenizer=tokenizer
    )
    assert unbalanced.length_balance is None


def test_stage_smoke_run_saves_a_reloadable_checkpoint_and_metrics(compose_config, tmp_path):
    cfg = compose_config("experiment=gym_reward_model", *SMALL)
    summary = train(cfg)
    out = tmp_path / "reward_model"
    metrics = json.loads((out / "results.json").read_text())
    assert metrics == json.loads(json.dumps(summary, sort_keys=True))
    assert {"accuracy", "gold_accuracy", "label_gold_accuracy", "length_pearson"} <= set(metrics["heldout"])
    lo, hi = metrics["heldout"]["accuracy_ci95"]  # the Wilson interval the near-chance warning reads
    assert 0 <= lo <= metrics["heldout"]["accuracy"] <= hi <= 1
    assert "test/reward/accuracy" in metrics["test_metrics"] and metrics["length_balance"]["mode"] == "downsample"
    assert set(metrics["truncated"]) == {"train", "val", "test"}
    assert metrics["skipped"]["train"].startswith("kept ")  # the gym's skip report (ties, identical pairs)
    model = AutoModelForSequenceClassification.from_pretrained(out / "checkpoint")
    assert type(model).__name__ == "LlamaForSequenceClassification"
    scores = RewardModel.load(out / "checkpoint").score(["who are you ?"], ["i am an ai model ."])
    assert len(scores) == 1


def test_preference_file_errors_name_file_and_line(compose_config, tmp_path):
    import pytest

    from lit_rlhf.data.errors import DataError

    rows = tmp_path / "prefs.jsonl"
    rows.write_text(
        json.dumps({"prompt": "hi", "chosen": "a .", "rejected": "b ."})
        + "\n"
        + json.dumps({"prompt": "hi", "chosen": "a ."})
        + "\n"
    )
    cfg = compose_config("experiment=gym_reward_model", "data=preferences", f"data.train.path={rows}", *SMALL[:4])
    with pytest.raises(Exception) as err:  # Hydra's instantiate wraps it; the CLI prints the cause
        train(cfg)
    cause = err.value if isinstance(err.value, DataError) else err.value.__cause__
    assert isinstance(cause, DataError) and str(cause).startswith(f"{rows}:2: field 'rejected': missing")


def test_reward_model_starts_from_an_sft_checkpoint(tmp_path):
    import torch

    from lit_rlhf.models import build_policy, save_hf_checkpoint
    from lit_rlhf.reward.model import build_reward_model

    policy, tokenizer = build_policy(tiny={"hidden_size": 32, "num_layers": 1, "num_heads": 2, "intermediate_size": 64})
    save_hf_checkpoint(policy, tokenizer, tmp_path / "sft")
    model, _ = build_reward_model(str(tmp_path / "sft"))
    assert type(model).__name__ == "LlamaForSequenceClassification" and model.config.num_labels == 1
    torch.testing.assert_close(model.model.embed_tokens.weight, policy.model.embed_tokens.weight)
