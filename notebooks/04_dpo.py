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
# # 04 · DPO: preference pairs from the policy, labelled by a reward model
#
# Direct preference optimisation trains the policy straight on pairs $(x, y_w, y_l)$ with
# $$L_\text{DPO} = -\log\sigma\Big(\beta\big[(\log\pi(y_w|x) - \log\pi_\text{ref}(y_w|x))
#   - (\log\pi(y_l|x) - \log\pi_\text{ref}(y_l|x))\big]\Big)$$
# and no sampling during training. As in ChatGLM-RLHF, the pairs are **sampled from the SFT policy and labelled by
# the trained reward model** (best of n = chosen, worst = rejected), which decouples DPO data from human annotation.
# As in PPO, a next-token loss on SFT data guards against forgetting: $L = L_\text{DPO} + \lambda L_\text{NTP}$.
#
# Everything below is built by hand from the objects `lit-rlhf-train experiment=gym_dpo` builds from its config,
# on a small model so that it runs on a CPU in a minute or two.

# %%
import copy
import os
from functools import partial

import lightning as L
import torch
from omegaconf import OmegaConf

torch.set_num_threads(min(2, os.cpu_count() or 1))
L.seed_everything(0, verbose=False)
QUIET = {
    "accelerator": "cpu",
    "logger": False,
    "enable_checkpointing": False,
    "enable_progress_bar": False,
    "enable_model_summary": False,
}

# %% [markdown]
# ## An SFT policy and a reward model
# A small Llama fine-tuned on the gym's imperfect demonstrations, and a small reward model trained on gym
# comparisons (two responses per prompt, majority of three simulated annotators). Both take a few seconds.

# %%
from lit_rlhf.gym import AlignmentGym
from lit_rlhf.gym.comparisons import gym_preference_rows
from lit_rlhf.models import build_policy
from lit_rlhf.reward.data import PreferenceDataModule
from lit_rlhf.reward.model import RewardModel, build_reward_model
from lit_rlhf.reward.module import RewardModelModule
from lit_rlhf.sft.data import SFTDataModule
from lit_rlhf.sft.module import SFTModule

gym = AlignmentGym(seed=0)
TINY = {"hidden_size": 64, "num_layers": 2, "num_heads": 2, "intermediate_size": 128}

sft, tokenizer = build_policy("embedded", seed=0, tiny=TINY)
sft_data = SFTDataModule(tokenizer, train=gym.demonstrations("train", per_prompt=2), batch_size=32, max_length=64)
L.Trainer(max_epochs=3, **QUIET).fit(
    SFTModule(sft, tokenizer, optimizer=partial(torch.optim.AdamW, lr=3e-3)), datamodule=sft_data
)

rm_model, rm_tokenizer = build_reward_model(seed=0, tiny=TINY)
rm_data = PreferenceDataModule(
    rm_tokenizer, gym_preference_rows(gym, "train", pairs_per_prompt=2), batch_size=32, max_length=64
)
L.Trainer(max_epochs=2, **QUIET).fit(
    RewardModelModule(rm_model, rm_tokenizer, optimizer=partial(torch.optim.AdamW, lr=3e-3)), datamodule=rm_data
)
reward_model = RewardModel(rm_model, rm_tokenizer)

# %% [markdown]
# ## Pairs: best and worst of n samples by the reward model
# `policy_pairs` samples n responses per prompt (seeded), scores them with `RewardModel.score` and keeps the best
# as chosen and the worst as rejected. Prompts whose samples all score the same, or whose best and worst texts are
# identical, teach nothing: they are skipped and counted. (The stage writes the pairs to `pairs.jsonl` and reuses
# them when a killed run restarts.)

# %%
from lit_rlhf.dpo.policy_pairs import policy_pairs

prompt_rows = [{"prompt": p.text, "category": p.category} for p in gym.prompts("train", ["math", "harmful", "writing"])]
pairs, report = policy_pairs(sft, tokenizer, reward_model.score, prompt_rows, n=4, seed=0, max_new_tokens=16)
print(report.summary())
for row in pairs[::60][:4]:
    print(
        f"{row['prompt']!r}\n   chosen   ({row['chosen_score']:+.2f}) {row['chosen']!r}"
        f"\n   rejected ({row['rejected_score']:+.2f}) {row['rejected']!r}"
    )

# %% [markdown]
# ## Reference log-probs, computed once
# The reference is a frozen copy of the SFT policy. `cache_reference_logps` runs it once over every pair and stores
# $\log\pi_\text{ref}(y_w|x)$ and $\log\pi_\text{ref}(y_l|x)$ in the dataset; batches carry them, so the
# reference can be dropped before training. Chosen and rejected go through the policy in **one** forward
# (a `[2B, T]` batch).

# %%
from lit_rlhf.dpo.data import DPODataModule

datamodule = DPODataModule(tokenizer, pairs, batch_size=16, max_length=64, val_fraction=0.1, seed=0)
reference = copy.deepcopy(sft)
print("reference forward over", datamodule.cache_reference_logps(reference), "pairs")
del reference
batch = next(iter(datamodule.train_dataloader()))
{k: tuple(v.shape) for k, v in batch.items()}

# %% [markdown]
# ## Train: L = L_DPO + λ·L_NTP
# `IndexedBatches` serves SFT batch number k as a pure function of k (the module checkpoints its counter, so a
# resumed run draws the same batches). The metrics are the implicit rewards $\beta(\log\pi - \log\pi_\text{ref})$
# of chosen and rejected and their margin.

# %%
from lit_rlhf.data.ntp import IndexedBatches
from lit_rlhf.dpo.config import DPOConfig
from lit_rlhf.dpo.module import DPOModule


class History(L.Callback):
    def __init__(self):
        self.rows = []

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        self.rows.append({k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith(("dpo/", "ntp/"))})


policy = copy.deepcopy(sft)
ntp = IndexedBatches.from_datamodule(sft_data, seed=0)
module = DPOModule(
    policy, tokenizer, DPOConfig(beta=0.1, ntp_coef=0.1), ntp_batches=ntp, optimizer=partial(torch.optim.AdamW, lr=3e-4)
)
history = History()
trainer = L.Trainer(max_epochs=3, callbacks=[history], log_every_n_steps=1, **QUIET)
trainer.fit(module, datamodule=datamodule)
{k: round(float(v), 3) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}

# %%
# %matplotlib inline
import matplotlib.pyplot as plt

steps = range(1, len(history.rows) + 1)
fig, axes = plt.subplots(1, 3, figsize=(12, 3))
axes[0].plot(steps, [r["dpo/reward_margin"] for r in history.rows])
axes[0].set_title("dpo/reward_margin")
axes[1].plot(steps, [r["dpo/chosen_reward"] for r in history.rows], label="chosen")
axes[1].plot(steps, [r["dpo/rejected_reward"] for r in history.rows], label="rejected")
axes[1].set_title("implicit rewards")
axes[1].legend()
axes[2].plot(steps, [r["dpo/reward_accuracy"] for r in history.rows])
axes[2].set_title("dpo/reward_accuracy")
for ax in axes:
    ax.set_xlabel("step")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## DPO vs SFT by the gold judge, and response lengths
# The gold judge plays the human evaluator (evaluation only). `compare_with_gold` (shared by the PPO and DPO stages)
# samples both policies on held-out prompts and counts wins, ties and losses per category with bootstrap
# intervals. The paper reports that DPO lengthens answers more than PPO; the comparison also returns the
# lengths of the answers it judged (`result["lengths"]`).

# %%
from lit_rlhf.evaluation.compare import compare_with_gold

options = OmegaConf.create({"split": "test", "samples_per_prompt": 1, "max_new_tokens": 24})
result = compare_with_gold(module.policy, sft, tokenizer, gym, options, seed=0, name="dpo")
lengths = {
    name: {c: stats["mean"] for c, stats in result["lengths"][key].items()}
    for name, key in (("dpo", "policy"), ("sft", "sft"))
}

categories = [c for c in sorted(result["gold_sft"]) if c != "all"] + ["all"]
fig, axes = plt.subplots(1, 2, figsize=(12, 3.2))
for i, (name, key) in enumerate((("sft", "gold_sft"), ("dpo", "gold_policy"))):
    xs = [j + 0.4 * i for j in range(len(categories))]
    axes[0].bar(xs, [result[key][c]["overall"] for c in categories], width=0.4, label=name)
    axes[1].bar(xs, [lengths[name][c] for c in categories], width=0.4, label=name)
for ax, title in zip(axes, ("gold judge score (test prompts)", "mean response length (words)")):
    ax.set_xticks([j + 0.2 for j in range(len(categories))], categories)
    ax.set_title(title)
    ax.legend()
plt.tight_layout()
plt.show()
print({name: round(v["all"], 2) for name, v in lengths.items()})

# %% [markdown]
# ## The same from the command line
# `lit-rlhf-train experiment=gym_dpo` runs this on the SFT and reward-model checkpoints of the earlier stages
# (`${paths.artifacts}/sft/checkpoint`, `${paths.artifacts}/reward_model/checkpoint`), writes `pairs.jsonl`, the
# DPO checkpoint and `results.json` under `${paths.artifacts}/dpo`. Knobs: `module.config.beta`,
# `module.config.loss_type=ipo`, `module.config.label_smoothing`, `module.config.ntp_coef`, `dpo.pairs.n`,
# `dpo.pairs.categories`, and `dpo.pairs.source=file dpo.pairs.path=...` for human prompt/chosen/rejected JSONL.
