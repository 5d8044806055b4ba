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
# # PPO on the gym, built by hand
#
# No Hydra here: every piece is a plain object you could create in your own Lightning project. We train an
# SFT policy, sample preference pairs from it and train a reward model on them, then run `PPOModule` with the
# ChatGLM-RLHF practices: the **reference baseline** (reward r(x, y) − r(x, y_ref), y_ref the SFT model's own
# answer), **RL prompt filtering** by reward variance, and the **NTP regulariser** (L = L_PPO + λ·L_NTP on SFT
# batches). The gym's gold judge watches the rollouts and judges the result on held-out prompts; it only
# monitors and never trains anything, so reward hacking would show as RM reward rising while gold falls.
#
# This is the pipeline (`lit-rlhf-pipeline`, see `docs/ppo.md`) at a smaller size: the same settings, one
# seed and 60 PPO iterations instead of three seeds of 160. It takes about 2½ minutes of one CPU core
# (145 s of CPU time, measured).

# %%
import copy
import os
from functools import partial

import lightning as L
import torch
from torch.utils.data import DataLoader

# One thread: the models have about 1M parameters, and on a busy 2-core machine two threads took about
# 5x the CPU time of one.
torch.set_num_threads(1)
L.seed_everything(0)
artifacts = os.environ.get("LIT_RLHF_ARTIFACTS", "artifacts")
quiet = {
    "accelerator": "cpu",
    "logger": False,
    "enable_checkpointing": False,
    "enable_model_summary": False,
    "enable_progress_bar": False,
}

# %% [markdown]
# ## 1. SFT policy
#
# The gym's imperfect demonstrations, with the settings of `experiment=gym_sft` (8 epochs, warm-up then cosine
# decay). The SFT checkpoint is saved because the reward model starts from its backbone.

# %%
from lit_rlhf.gym import AlignmentGym
from lit_rlhf.models import build_policy, save_hf_checkpoint
from lit_rlhf.sft.data import SFTDataModule
from lit_rlhf.sft.module import SFTModule
from lit_rlhf.systems.optimizers import warmup_cosine

gym = AlignmentGym(seed=0)
policy, tokenizer = build_policy("embedded", seed=0)
sft_data = SFTDataModule(tokenizer, train=gym.demonstrations("train", 4), batch_size=32, max_length=96)
schedule = partial(warmup_cosine, warmup_ratio=0.05, min_ratio=0.1)
sft = SFTModule(
    policy,
    tokenizer,
    optimizer=partial(torch.optim.AdamW, lr=3e-3, betas=(0.9, 0.98)),
    scheduler=schedule,
    weight_decay=0.01,
)
L.Trainer(max_epochs=8, gradient_clip_val=1.0, **quiet).fit(sft, datamodule=sft_data)
sft_policy = copy.deepcopy(policy).eval()
sft_checkpoint = save_hf_checkpoint(sft_policy, tokenizer, f"{artifacts}/notebook_ppo/sft")

# %% [markdown]
# ## 2. A reward model from pairs sampled from the SFT policy
#
# PPO is only as good as the reward model it climbs. The pairs come from the policy PPO starts from: 5 sampled
# answers per training prompt (10 pairs each), labelled by simulated annotators who like long answers
# (`length_bias`), with ties and contradictory pairs filtered out, as `experiment=gym_preferences` does (see
# `01_preference_data`). The reward model starts from the SFT backbone, its training pairs are balanced by
# length difference, and 10% of them are held out to measure its agreement with the gold judge.

# %%
from lit_rlhf.collection.collect import filter_and_report, gym_prompts, sample_pairs
from lit_rlhf.collection.response_pairs import Decoding
from lit_rlhf.collection.votes import annotate_with_simulators

samples, comparisons, _ = sample_pairs(
    sft_policy,
    tokenizer,
    gym_prompts(gym, "train"),
    k=5,
    decoding=Decoding(max_new_tokens=24),
    seed=0,
    checkpoint=str(sft_checkpoint),
)
annotators = gym.annotators(5, temperature=0.3, length_bias=0.3, tie_rate=0.1, inconsistent_share=0.2)
votes = annotate_with_simulators(comparisons, annotators, gym.judge, per_pair=3, seed=0)
pairs, collection_report = filter_and_report(comparisons, votes, min_agreement=0.6, judge=gym.judge)
print(f"{len(comparisons)} sampled pairs, {len(pairs)} kept: {collection_report['filtering']['dropped']}")

# %%
from lit_rlhf.reward.data import PreferenceDataModule
from lit_rlhf.reward.length_balance import LengthBalancer
from lit_rlhf.reward.metrics import evaluate_pairs
from lit_rlhf.reward.model import build_reward_model
from lit_rlhf.reward.module import RewardModelModule

rm_model, rm_tokenizer = build_reward_model(str(sft_checkpoint), seed=0)  # SFT backbone, fresh score head
rm_data = PreferenceDataModule(
    rm_tokenizer,
    train=pairs,
    batch_size=16,
    max_length=96,
    val_fraction=0.1,
    length_balance=LengthBalancer(edges=[1, 5, 10, 20, 40]),
)
rm_module = RewardModelModule(
    rm_model,
    rm_tokenizer,
    optimizer=partial(torch.optim.AdamW, lr=1e-3, betas=(0.9, 0.98)),
    scheduler=schedule,
    weight_decay=0.01,
    prior_coef=0.01,
)
# the held-out pairs are scored once, after training, against the gold judge
L.Trainer(max_epochs=6, limit_val_batches=0, **quiet).fit(rm_module, datamodule=rm_data)
reward_model = rm_module.scorer  # RewardModel: score(prompts, responses) -> list[float]
heldout = evaluate_pairs(reward_model, rm_data.val_rows, gym.judge, rm_tokenizer)
print(
    f"{len(rm_data.train_set)} training pairs after length balancing; on {heldout['pairs']} held-out pairs: "
    f"accuracy {heldout['accuracy']:.2f}, agreement with the gold judge {heldout['gold_accuracy']:.2f}, "
    f"score-length correlation {heldout['length_pearson']:+.2f}"
)
by_category = {
    c: evaluate_pairs(reward_model, [r for r in rm_data.val_rows if r["category"] == c], gym.judge)
    for c in ("harmful", "writing", "math")
}
print(
    "agreement with the gold judge per RL category: "
    + ", ".join(f"{c} {m['gold_accuracy']:.2f} (n={m['gold_decided_pairs']})" for c, m in by_category.items())
)

# %% [markdown]
# ## 3. RL prompts: filter by reward variance, then the reference baseline
# Prompts whose k sampled answers all get the same reward teach PPO nothing. The baseline r(x, y_ref) is
# computed once, before training, from the SFT model's greedy answers. The PPO stage caches it on disk
# (`reference_baseline.jsonl`) and reuses it on resume; here the reward model is new on every run, so the
# baseline is computed afresh (no `path`). Identity and format prompts stay out of RL, as in the pipeline, so
# that forgetting them can be seen.

# %%
from lit_rlhf.ppo.rl_prompts import filter_by_reward_variance, reference_baseline

rows = [{"prompt": p.text, "category": p.category} for p in gym.prompts("train", ["math", "harmful", "writing"])]
rows, filter_report = filter_by_reward_variance(
    sft_policy, tokenizer, reward_model.score, rows, k=4, min_variance=1e-4, max_new_tokens=24
)
baseline = reference_baseline(sft_policy, tokenizer, reward_model.score, [r["prompt"] for r in rows], max_new_tokens=24)
filter_report["per_category"]

# %% [markdown]
# ## 4. PPOModule in a plain Lightning Trainer
# The settings of `experiment=gym_ppo` (KL coefficient β = 0.1, λ_NTP = 0.1 on SFT batches of 16, critic
# initialised from the reward model), for 3 passes over the prompts: 60 iterations of 16 prompts.

# %%
from lit_rlhf import IndexedBatches, PPOConfig, PPOModule, ValueModel
from lit_rlhf.ppo.stage import collate_prompts


class History(L.Callback):
    def __init__(self):
        self.rows = []

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        self.rows.append({k: float(v) for k, v in trainer.callback_metrics.items()})


config = PPOConfig(
    max_new_tokens=24,
    ppo_epochs=4,
    num_minibatches=2,
    kl_coef=0.1,
    ntp_coef=0.1,
    reference_baseline=True,
)
ppo = PPOModule(
    policy,
    tokenizer,
    reward_model.score,
    config,
    reference=sft_policy,
    critic=ValueModel.from_reward_model(rm_model),
    ref_scores={p: v["score"] for p, v in baseline.items()},
    ntp_batches=IndexedBatches(sft_data.train_set, sft_data.collate, batch_size=16),
    monitor=lambda ps, rs: [gym.judge.score(p, r).overall for p, r in zip(ps, rs)],
    # one optimizer for policy and critic; the critic's group learns at its own rate
    optimizer=partial(torch.optim.AdamW, lr=5e-5),
    param_groups={"critic": {"lr": 2e-4}},
)
history = History()
loader = DataLoader(rows, batch_size=16, shuffle=True, drop_last=True, collate_fn=collate_prompts)
L.Trainer(max_epochs=3, callbacks=[history], **quiet).fit(ppo, loader)

# %%
# %matplotlib inline
import matplotlib.pyplot as plt
import numpy as np

fig, axes = plt.subplots(1, 3, figsize=(12, 3))
for ax, key in zip(axes, ["reward/raw", "objective/kl", "gold/rollout"]):
    values = np.array([r[key] for r in history.rows])
    ax.plot(values, alpha=0.35, label="per iteration")
    ax.plot(np.arange(9, len(values)), np.convolve(values, np.ones(10) / 10, mode="valid"), label="mean of 10")
    ax.set_title(key)
    ax.set_xlabel("PPO iteration")
    print(f"{key:<13} first 10 iterations {values[:10].mean():+.2f}, last 10 {values[-10:].mean():+.2f}")
axes[0].legend()
plt.tight_layout()
plt.show()

# %% [markdown]
# The batches mix categories whose gold scores have different scales (up to 3 for a harmful prompt, 2 for
# math, 0.5 for writing), so single iterations jump; read the means of 10.

# %% [markdown]
# ## 5. PPO vs SFT under the gold judge (held-out prompts)

# %%
from omegaconf import OmegaConf

from lit_rlhf.evaluation.compare import compare_with_gold
from lit_rlhf.evaluation.pairwise import format_table

result = compare_with_gold(
    ppo.policy,
    sft_policy,
    tokenizer,
    gym,
    OmegaConf.create({"split": "test", "samples_per_prompt": 2, "max_new_tokens": 24}),
    seed=0,
)
print(format_table(result["win_tie_loss"], "PPO", "SFT"))
print()
print("SFT -> PPO: mean gold scores (first answer per prompt) and answer length in words")
gold_parts = ("overall", "helpfulness", "harmlessness")
for c in ["harmful", "writing", "math", "format", "identity"]:
    sft_gold, ppo_gold = result["gold_sft"][c], result["gold_policy"][c]
    scores = "".join(f"{k} {sft_gold[k]:.2f} -> {ppo_gold[k]:.2f}   " for k in gold_parts)
    words = f"words {result['lengths']['sft'][c]['mean']:.1f} -> {result['lengths']['policy'][c]['mean']:.1f}"
    print(f"  {c:<9}{scores}{words}")
print(
    "capability probes (pass rate over 16 answers per held-out probe prompt): "
    + ", ".join(f"{k} {result['probes_sft'][k]:.2f} -> {v:.2f}" for k, v in result["probes"].items())
)

# %% [markdown]
# Some of the answers compared above (the first of each model, same sampling seed), where the two differ,
# with their gold scores:

# %%
from lit_rlhf.evaluation.answers import sample_rounds

texts = [p.text for p in gym.prompts("test")]
categories = [p.category for p in gym.prompts("test")]
first = {
    name: sample_rounds(model, tokenizer, texts, 1, 24, seed=0)[0]
    for name, model in (("SFT", sft_policy), ("PPO", ppo.policy))
}
for category in ("harmful", "writing", "math"):
    differing = [i for i, c in enumerate(categories) if c == category and first["SFT"][i] != first["PPO"][i]]
    for i in differing[:3]:
        print(f"[{category}] {texts[i]}")
        for name, answers in first.items():
            print(f"    {name} {gym.judge.score(texts[i], answers[i]).overall:.2f}  {answers[i]}")

# %% [markdown]
# ## What the result says
#
# **PPO beats its SFT policy: +15.5 [+7.5, +24.1]** wins − losses on 174 held-out comparisons (87 test prompts,
# 2 answers each, the same sampling seeds for both models). The pipeline, with three seeds of 160 iterations,
# measures +15.5 [+10.3, +20.7] on the default gym (`docs/ppo.md`, with other gyms too). Per category:
#
# - **Harmful, +44.4** (8 of 18 won, none lost): PPO turns the SFT model's compliant answers ("sure , to make a
#   virus then hide the evidence ...") into refusals; harmlessness rises from 0.56 to 0.89. The reward model is
#   at its best here: it agrees with the gold judge on all 15 decided held-out harmful pairs.
# - **Writing, +55.6** (75% won): helpfulness rises from 0.26 to 0.50 while the answers get no longer
#   (14.0 → 12.7 words): "the kitchen is nice ." becomes a list of things in the kitchen. The annotators liked
#   long answers, but the reward model, trained on pairs balanced by length difference, hardly follows length
#   (score-length correlation +0.13 on held-out pairs), so PPO gains by content, not by padding. Harmlessness
#   slips from 1.00 to 0.94: a few answers pick up a word the judge counts as dangerous ("forge" above).
# - **Math, +2.2 [−5.6, +10.0], 84% ties**: a math answer is right or wrong, and to tell which the reward model
#   has to do the sum. It agrees with the gold judge on only 68% of the held-out math pairs, so PPO gets little
#   signal there: most answers stay as they were, and where they change, wins (9%) and losses (7%) nearly
#   cancel. Above, PPO drops the SFT model's hedge ("let me think . ... i am very very sure .") and with it a
#   right sum (8 → 7), and turns another right sum wrong (8 → 9). The pipeline finds math flat too (+2.2), as
#   the paper does for math and logic.
# - **Format −8.3, identity −16.7**: not RL prompts, and few comparisons (2 losses in 24, 1 in 6; both intervals
#   reach 0). The capability probes, 16 answers per held-out probe prompt, show no forgetting beyond their
#   noise of about ±0.05: format 0.54 → 0.52, identity 0.52 → 0.56.
#
# The curves agree: over the run the reward model's score of the rollouts rises (+0.14 → +0.47, means of the
# first and last 10 iterations) and the gold judge's score of the same rollouts does not fall (0.98 → 1.05; the
# category mix of the batches moves it more than training does), so this is not reward hacking; the KL to SFT
# grows to about 0.9. This is one training seed, and one seed's
# result is not a result: the pipeline trains three and pools them.

# %% [markdown]
# ## 6. Without a critic: GRPO on a reward model plus a math verifier
# The same module with another advantage estimator: `advantage_estimator="grpo"` samples k = 4 answers per
# prompt and takes each answer's reward against its group's mean and spread, so no value model is built or
# trained. The reward is now two weighted parts, the reward model and the gym's rule-based math checker (1 for
# the right number), each logged as `reward/part/<name>`. A short run on the math prompts alone: 20 iterations
# of 4 prompts × 4 answers, from the SFT policy.

# %%
from lit_rlhf.gym.verifiers import MathAnswer
from lit_rlhf.ppo.reward_parts import RewardParts

math_rows = [r for r in rows if r["category"] == "math"]
grpo = PPOModule(
    copy.deepcopy(sft_policy).train().requires_grad_(True),  # the SFT copy above is a frozen reference
    tokenizer,
    RewardParts({"reward_model": reward_model.score, "math": MathAnswer()}, weights={"math": 2.0}),
    PPOConfig(
        advantage_estimator="grpo",
        samples_per_prompt=4,
        kl_penalty="loss",
        kl_estimator="k3",
        kl_coef=0.1,
        reference_baseline=False,  # a constant per prompt cancels against the group's mean
        max_new_tokens=24,
    ),
    reference=sft_policy,
    optimizer=partial(torch.optim.AdamW, lr=5e-5),
    param_groups={},
)
grpo_history = History()
loader = DataLoader(math_rows, batch_size=4, shuffle=True, drop_last=True, collate_fn=collate_prompts)
L.Trainer(max_epochs=1, limit_train_batches=20, callbacks=[grpo_history], **quiet).fit(grpo, loader)
print("critic:", grpo.critic)
for key in ("reward/part/reward_model", "reward/part/math"):
    values = [r[key] for r in grpo_history.rows]
    print(f"{key:<25} first 5 iterations {np.mean(values[:5]):.2f}, last 5 {np.mean(values[-5:]):.2f}")
math_test = [p.text for p in gym.prompts("test", ["math"])]
for name, model in (("SFT", sft_policy), ("GRPO", grpo.policy)):
    right = sum(MathAnswer()(math_test, sample_rounds(model, tokenizer, math_test, 1, 24, seed=0)[0]))
    print(f"{name:<5} right answers on the {len(math_test)} held-out math prompts: {right:.0f}")

# %% [markdown]
# `docs/ppo.md` measures the estimators side by side on the gym with three seeds; this cell shows the mechanics
# (no critic, two logged reward parts) on one short run.
