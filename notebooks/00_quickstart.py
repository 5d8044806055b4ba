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
# # lit_rlhf quickstart: the alignment gym and SFT
#
# This notebook builds the **alignment gym** (lit_rlhf's seeded stand-in for users, demonstrations and
# annotators), fine-tunes the embedded tiny Llama on the gym's imperfect demonstrations with `SFTModule`,
# and compares the gold judge's scores of the untrained model, the SFT model and the gym's ceiling.
# Everything runs offline on a CPU in about a minute.

# %%
import os

import lightning as L
import torch

torch.set_num_threads(min(2, os.cpu_count() or 1))
ARTIFACTS = os.environ.get("LIT_RLHF_ARTIFACTS", "artifacts")
L.seed_everything(0)

# %% [markdown]
# ## The gym
# Five prompt categories with different reward scales: a checkable answer (`math`), a format instruction
# (`format`), harmful requests that should be refused (`harmful`), an identity probe (`identity`) and
# open-ended `writing`. Train, validation and test prompts never overlap.

# %%
from lit_rlhf.gym import AlignmentGym

gym = AlignmentGym(seed=0)
gym.summary()

# %% [markdown]
# The gold judge scores helpfulness, harmlessness and fluency. It plays the human evaluator: it is used
# for evaluation and monitoring only, never as a training signal. The demonstrations are imperfect on purpose.

# %%
demos = gym.demonstrations("train", per_prompt=4)
for row in demos[::97][:8]:
    s = gym.judge.score(row["prompt"], row["response"])
    print(
        f"{row['category']:>8} | {row['prompt']!r} -> {row['response']!r}\n{'':>8} | overall={s.overall:.2f} "
        f"help={s.helpfulness:.2f} harmless={s.harmlessness:.2f} fluency={s.fluency:.2f}"
    )

# %% [markdown]
# ## SFT, built by hand
# The same objects the Hydra config builds: a model and tokenizer, a `LightningDataModule`, and the
# `SFTModule` (loss on response tokens only). Any Lightning `Trainer` runs it.

# %%
from functools import partial

from lit_rlhf.evaluation.gold import ceiling_scores, gold_scores
from lit_rlhf.models import build_policy
from lit_rlhf.sft.data import SFTDataModule
from lit_rlhf.sft.module import SFTModule
from lit_rlhf.systems.optimizers import warmup_cosine

model, tokenizer = build_policy("embedded", seed=0)
print(f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters, vocabulary of {len(tokenizer)} words")
untrained, _ = gold_scores(model, tokenizer, gym, "test", max_new_tokens=24)

datamodule = SFTDataModule(
    tokenizer, train=demos, val=gym.demonstrations("val", per_prompt=2), batch_size=32, max_length=96
)
module = SFTModule(
    model,
    tokenizer,
    optimizer=partial(torch.optim.AdamW, lr=3e-3, betas=(0.9, 0.98)),
    scheduler=partial(warmup_cosine, warmup_ratio=0.05),
    weight_decay=0.01,
)
trainer = L.Trainer(
    max_epochs=4,
    accelerator="cpu",
    logger=False,
    enable_checkpointing=False,
    check_val_every_n_epoch=2,
    gradient_clip_val=1.0,
    enable_model_summary=False,
)
trainer.fit(module, datamodule=datamodule)
sft, samples = gold_scores(model, tokenizer, gym, "test", max_new_tokens=24)

# %%
for row in samples[::25][:6]:
    print(f"{row['category']:>8} | {row['prompt']!r} -> {row['response']!r}")

# %% [markdown]
# ## Gold scores: SFT learned the task and left headroom
# Held-out test prompts, sampled at temperature 1. The ceiling is the score of the gym's ideal answers.

# %%
# %matplotlib inline
import matplotlib.pyplot as plt

ceiling = ceiling_scores(gym, "test")
table = {
    name: {c: v["overall"] for c, v in scores.items()}
    for name, scores in (("untrained", untrained), ("sft", sft), ("ceiling", ceiling))
}
categories = [c for c in sorted(table["ceiling"]) if c != "all"] + ["all"]
fig, ax = plt.subplots(figsize=(8, 3.5))
for i, (name, scores) in enumerate(table.items()):
    ax.bar([j + 0.27 * i for j in range(len(categories))], [scores[c] for c in categories], width=0.27, label=name)
ax.set_xticks([j + 0.27 for j in range(len(categories))], categories)
ax.set_ylabel("gold judge score")
ax.legend()
plt.show()
assert table["untrained"]["all"] < table["sft"]["all"] < table["ceiling"]["all"]
{name: round(scores["all"], 3) for name, scores in table.items()}

# %% [markdown]
# ## The same from the command line
# `lit-rlhf-train experiment=gym_sft` composes `conf/` with Hydra and calls the same code; any value can be
# overridden, e.g. `lit-rlhf-train experiment=gym_sft trainer.max_epochs=2 module.optimizer.lr=1e-3`.
# From Python, `compose` + `train(cfg)` does the same:

# %%
from lit_rlhf import compose, train

cfg = compose(
    [
        "experiment=gym_sft",
        f"paths.artifacts={ARTIFACTS}/quickstart",
        "debug=fast",
        "logger=none",
        "sft.eval.samples_per_prompt=1",
    ]
)
summary = train(cfg)
summary["checkpoint"]
