"""Held-out reward metrics for any number of categories: none, one (every HH-RLHF file), many."""

import lightning as L
import pytest
import torch

from lit_rlhf.reward.data import PreferenceDataModule
from lit_rlhf.reward.metrics import GroupedAccuracy, RewardMetrics
from lit_rlhf.reward.model import build_reward_model
from lit_rlhf.reward.module import RewardModelModule

TINY = {"hidden_size": 16, "num_layers": 1, "num_heads": 2, "intermediate_size": 32}
PAIRS = [
    ("what is 2 plus 3 ?", "the answer is 5 .", "i think it is a big number ."),
    ("who are you ?", "i am an ai model .", "i am gizmo , an assistant made by the gym lab ."),
    ("describe the ocean .", "the ocean is deep and wide .", "blue ."),
    ("name a colour .", "red .", "i do not know any colours at all ."),
]


@pytest.mark.parametrize("num_groups", [0, 1, 3])
def test_grouped_accuracy_is_a_list_of_one_value_per_group(num_groups):
    metric = GroupedAccuracy(num_groups)
    metric.update(torch.tensor([1.0, 0.0, 1.0]), torch.tensor([0, 0, num_groups - 1]))
    values = metric.per_group()
    assert isinstance(values, list) and len(values) == num_groups
    if num_groups == 1:
        assert values == [pytest.approx(2 / 3)]
    if num_groups == 3:
        assert values[0] == pytest.approx(0.5) and values[2] == 1.0


@pytest.mark.parametrize("categories", [[], ["all"], ["math", "identity", "writing"]])
def test_reward_metrics_compute_for_any_number_of_categories(categories):
    metrics = RewardMetrics(categories, ["equal", "1+"])
    batch = {
        "category_id": torch.tensor([0, 0, len(categories) - 1]),
        "bucket_id": torch.tensor([1, 1, 0]),
        "chosen_len": torch.tensor([3, 4, 5]),
        "rejected_len": torch.tensor([2, 2, 5]),
    }
    metrics.update(torch.tensor([1.0, 0.0, 2.0]), torch.tensor([0.0, 1.0, 1.0]), batch)
    out = metrics.compute("reward")
    assert out["reward/accuracy"] == pytest.approx(2 / 3)
    by_category = {k.rsplit("/", 1)[1]: v for k, v in out.items() if "/accuracy_by_category/" in k}
    if not categories:
        assert by_category == {}
    elif len(categories) == 1:
        assert by_category == {"all": pytest.approx(2 / 3)}
    else:
        assert by_category == {"math": 0.5, "writing": 1.0}  # "identity" saw no pair: left out


def fit_with_validation(rows: list[dict]) -> dict[str, float]:
    """One training batch and a validation epoch (after the sanity check) on a tiny reward model."""
    model, tokenizer = build_reward_model(tiny=TINY, seed=0)
    dm = PreferenceDataModule(tokenizer, rows, val=rows, batch_size=2, max_length=48)
    module = RewardModelModule(model, tokenizer)
    trainer = L.Trainer(
        max_epochs=1,
        limit_train_batches=1,
        limit_val_batches=2,
        num_sanity_val_steps=1,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(module, datamodule=dm)
    return {k: float(v) for k, v in trainer.callback_metrics.items()}


@pytest.mark.parametrize(
    "category_of",
    [
        lambda i: None,  # no category field: every pair is in "all"
        lambda i: "hh",  # one category, as every HH-RLHF file
        lambda i: ("math", "identity")[i % 2],  # several categories
    ],
    ids=["none", "one", "many"],
)
def test_validation_runs_and_reports_each_category(category_of):
    rows = []
    for i, (prompt, chosen, rejected) in enumerate(PAIRS):
        row = {"prompt": prompt, "chosen": chosen, "rejected": rejected}
        if category_of(i) is not None:
            row["category"] = category_of(i)
        rows.append(row)
    metrics = fit_with_validation(rows)
    expected = sorted({r.get("category", "all") for r in rows})
    reported = sorted(k.rsplit("/", 1)[1] for k in metrics if k.startswith("reward/accuracy_by_category/"))
    assert reported == expected
    assert 0.0 <= metrics["reward/accuracy"] <= 1.0
