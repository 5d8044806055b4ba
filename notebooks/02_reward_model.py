# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     notebook_metadata_filter: -jupytext.text_representation.jupytext_version
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 02 · Reward model
#
# A reward model gives a scalar score to a (prompt, response). It is trained on preference pairs with the
# pairwise Bradley–Terry loss $-\log\sigma(r_w - r_l)$ plus the ChatGLM-RLHF stabiliser, a zero-mean Gaussian
# prior on the scores $\lambda(r_w^2 + r_l^2)$.
#
# This notebook trains two reward models on the alignment gym, where the simulated annotators **prefer longer
# answers** (`length_bias`), and shows what **bucket-based length balancing** does: accuracy by
# length-difference bucket and the correlation between score and response length.
# Everything here is what `lit-rlhf-train experiment=gym_reward_model` runs, piece by piece.

# %%
from functools import partial

import lightning as L
import torch

from lit_rlhf.gym import AlignmentGym
from lit_rlhf.gym.comparisons import gym_preference_rows
from lit_rlhf.reward.data import PreferenceDataModule
from lit_rlhf.reward.length_balance import LengthBalancer
from lit_rlhf.reward.metrics import evaluate_pairs
from lit_rlhf.reward.model import RewardModel, build_reward_model
from lit_rlhf.reward.module import RewardModelModule

torch.set_num_threads(1)  # tiny model: one thread is fastest on a shared CPU
_ = L.seed_everything(0, verbose=False)

# %% [markdown]
# ## Preference pairs from the gym
#
# Two responses per prompt from the gym's mix of ideal and flawed answers, labelled by the majority of three
# simulated annotators with a length bias of 0.5 utility per 10 extra words. Ties are dropped and counted.
# Rows have the schema the collection stage writes (`prompt, chosen, rejected, category, chosen_len, ...`).

# %%
gym = AlignmentGym(seed=0)
train_rows = gym_preference_rows(gym, "train", pairs_per_prompt=2, length_bias=0.5)
test_rows = gym_preference_rows(gym, "test", pairs_per_prompt=2, length_bias=0.5, seed=123)
print(train_rows.report.summary())
decided = [r for r in train_rows if r["chosen_len"] != r["rejected_len"]]
print(
    f"longer response wins in {sum(r['chosen_len'] > r['rejected_len'] for r in decided) / len(decided):.0%} "
    "of training pairs with different lengths"
)
train_rows[0]

# %% [markdown]
# ## Bucket-based length balancing
#
# Pairs are bucketed by the length difference of their two responses (tokens of the reward model's tokenizer);
# inside each bucket the pairs where the longer answer won are down-sampled to the number where it lost.

# %%
_, tokenizer = build_reward_model()
balanced_rows, report = LengthBalancer(edges=[1, 5, 10, 20, 40], mode="downsample", seed=0)(train_rows, tokenizer)
print(report.format())

# %% [markdown]
# ## Train two reward models
#
# Same model (a small Llama with a score head on the last token), same steps budget per pair; one sees the raw pairs,
# one the balanced pairs. Chosen and rejected go through the model in one forward pass.

# %%
TINY = {"hidden_size": 64, "num_layers": 2, "num_heads": 2, "intermediate_size": 256}


def train_reward_model(rows, epochs=3):
    model, tokenizer = build_reward_model(seed=0, tiny=TINY)
    datamodule = PreferenceDataModule(tokenizer, rows, test=test_rows, batch_size=32, max_length=96)
    module = RewardModelModule(model, tokenizer, optimizer=partial(torch.optim.AdamW, lr=5e-3), prior_coef=0.01)
    trainer = L.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
    )
    trainer.fit(module, datamodule=datamodule)
    test_metrics = trainer.test(module, datamodule=datamodule, verbose=False)[0]
    return module, test_metrics


models, test_metrics = {}, {}
for name, rows in (("unbalanced", train_rows), ("balanced", balanced_rows)):
    models[name], test_metrics[name] = train_reward_model(rows)

# %% [markdown]
# ## Accuracy by length-difference bucket
#
# Held-out pairs are labelled by the same length-biased annotators; `gold` is the gym's gold judge, which
# only the evaluation sees.

# %%
summary = {name: evaluate_pairs(models[name].scorer, test_rows, gym.judge, tokenizer) for name in models}
buckets = [k for k in test_metrics["unbalanced"] if "accuracy_by_length_diff" in k]
print(f"{'length-diff bucket':<22}" + "".join(f"{name:>12}" for name in models))
for key in buckets:
    print(
        f"{key.split('/')[-1]:<22}" + "".join(f"{test_metrics[name].get(key, float('nan')):>12.3f}" for name in models)
    )
print()
for key in (
    "accuracy",
    "gold_accuracy",
    "label_gold_accuracy",
    "length_pearson",
    "length_spearman",
    "score_mean",
    "score_std",
):
    print(f"{key:<22}" + "".join(f"{summary[name][key]:>12.3f}" for name in models))

# %% [markdown]
# ## Score vs response length
#
# With length-biased labels, the unbalanced model learns "longer is better"; balancing removes most of that
# shortcut while keeping accuracy against the gold judge.

# %%
import matplotlib.pyplot as plt

responses = [(r["prompt"], r[side]) for r in test_rows for side in ("chosen", "rejected")]
lengths = [len(tokenizer(resp, add_special_tokens=False)["input_ids"]) for _, resp in responses]
fig, axes = plt.subplots(1, 2, figsize=(10, 3.5), sharey=False)
for ax, name in zip(axes, models):
    scores = models[name].score([p for p, _ in responses], [r for _, r in responses])
    ax.scatter(lengths, scores, s=6, alpha=0.4)
    ax.set_title(f"{name}: pearson {summary[name]['length_pearson']:.2f}")
    ax.set_xlabel("response length (tokens)")
axes[0].set_ylabel("reward")
fig.tight_layout()

# %% [markdown]
# ## Scoring outside training, save and reload
#
# `RewardModel.score(prompts, responses)` is the API that PPO, DPO labelling and evaluation use. The checkpoint
# is a plain Hugging Face `LlamaForSequenceClassification` that `AutoModelForSequenceClassification` loads
# without lit_rlhf.

# %%
import tempfile

from transformers import AutoModelForSequenceClassification

prompt = "describe the ocean ."
candidates = [
    "the ocean has waves and salt and fish and coral .",
    "the ocean is very really waves and so salt and waves and deep and quite salt and the ocean is truly waves .",
]
with tempfile.TemporaryDirectory() as path:
    models["balanced"].scorer.save(path)
    reloaded = RewardModel.load(path)
    print(type(AutoModelForSequenceClassification.from_pretrained(path)).__name__)
    for name, model in (("unbalanced", models["unbalanced"].scorer), ("balanced (reloaded)", reloaded)):
        print(name, [round(s, 3) for s in model.score([prompt] * 2, candidates)])
