"""Writes notebooks/03_ppo.ipynb."""

from _notebook import write_notebook

cells = [
    ("md", """# PPO on the gym, built by hand

No Hydra here: every piece is a plain object you could create in your own Lightning project. We train
a short SFT policy and a reward model on the gym, then run `PPOModule` with the ChatGLM-RLHF practices:
the **reference baseline** (reward r(x, y) − r(x, y_ref), y_ref the SFT model's own answer), **RL prompt
filtering** by reward variance, and the **NTP regulariser** (L = L_PPO + λ·L_NTP on SFT batches). The gym's
gold judge watches the rollouts (monitoring only), so reward hacking would show as RM reward rising while
gold falls. A few minutes on a CPU; the numbers are small-scale, see the docs for full runs."""),
    ("code", """import copy, os
from functools import partial
import torch, lightning as L
from torch.utils.data import DataLoader

torch.set_num_threads(min(2, os.cpu_count() or 1))
L.seed_everything(0)
quiet = dict(accelerator="cpu", logger=False, enable_checkpointing=False, enable_model_summary=False,
             enable_progress_bar=False)"""),
    ("md", "## 1. SFT policy (short) and a reward model from gym comparisons"),
    ("code", """from lit_rlhf.gym import AlignmentGym
from lit_rlhf.models import build_policy
from lit_rlhf.data.sft_data import SFTDataModule
from lit_rlhf.modules.sft_module import SFTModule

gym = AlignmentGym(seed=0)
policy, tokenizer = build_policy("embedded", seed=0)
sft_data = SFTDataModule(tokenizer, train=gym.demonstrations("train", 4), batch_size=32, max_length=96)
L.Trainer(max_epochs=4, gradient_clip_val=1.0, **quiet).fit(
    SFTModule(policy, tokenizer, optimizer=partial(torch.optim.AdamW, lr=3e-3, betas=(0.9, 0.98))), datamodule=sft_data)
sft_policy = copy.deepcopy(policy).eval()"""),
    ("code", """from lit_rlhf.gym.comparisons import gym_preference_rows
from lit_rlhf.models.reward_model import build_reward_model
from lit_rlhf.data.preference_data import PreferenceDataModule
from lit_rlhf.modules.reward_module import RewardModelModule

rm_model, rm_tokenizer = build_reward_model("embedded", seed=0)
pairs = gym_preference_rows(gym, "train", pairs_per_prompt=2, length_bias=0.3, seed=0)
rm_module = RewardModelModule(rm_model, rm_tokenizer, optimizer=partial(torch.optim.AdamW, lr=1e-3), prior_coef=0.01)
L.Trainer(max_epochs=4, **quiet).fit(rm_module, datamodule=PreferenceDataModule(rm_tokenizer, train=pairs, batch_size=32, max_length=96))
reward_model = rm_module.scorer            # RewardModel: score(prompts, responses) -> list[float]
print(len(pairs), "training pairs")"""),
    ("md", """## 2. RL prompts: filter by reward variance, then cache the reference baseline
Prompts whose k sampled answers all get the same reward teach PPO nothing. The baseline is computed
once, before training, from the SFT model's greedy answers; it is cached on disk and reused on resume."""),
    ("code", """from lit_rlhf.ppo.prompts import filter_by_reward_variance, reference_baseline

artifacts = os.environ.get("LIT_RLHF_ARTIFACTS", "artifacts")
rows = [{"prompt": p.text, "category": p.category} for p in gym.prompts("train", ["math", "harmful", "writing"])]
rows, filter_report = filter_by_reward_variance(sft_policy, tokenizer, reward_model.score, rows, k=4,
                                                min_variance=1e-4, max_new_tokens=24)
baseline = reference_baseline(sft_policy, tokenizer, reward_model.score, [r["prompt"] for r in rows],
                              f"{artifacts}/notebook_ppo/reference_baseline.jsonl", max_new_tokens=24)
filter_report["per_category"]"""),
    ("md", "## 3. PPOModule in a plain Lightning Trainer"),
    ("code", """from lit_rlhf.modules.ppo_module import PPOModule
from lit_rlhf.models.value_model import ValueModel
from lit_rlhf.ppo.config import PPOConfig
from lit_rlhf.data.ntp import IndexedBatches
from lit_rlhf.stages.ppo import collate_prompts


class History(L.Callback):
    def __init__(self):
        self.rows = []

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        self.rows.append({k: float(v) for k, v in trainer.callback_metrics.items()})


config = PPOConfig(max_new_tokens=24, ppo_epochs=4, num_minibatches=2, kl_coef=0.05, ntp_coef=0.1,
                   policy_lr=5e-5, critic_lr=2e-4, reference_baseline=True)
ppo = PPOModule(policy, tokenizer, reward_model.score, config, reference=sft_policy,
                critic=ValueModel.from_reward_model(rm_model), ref_scores={p: v["score"] for p, v in baseline.items()},
                ntp_batches=IndexedBatches.from_datamodule(sft_data),
                monitor=lambda ps, rs: [gym.judge.score(p, r).overall for p, r in zip(ps, rs)])
history = History()
loader = DataLoader(rows, batch_size=16, shuffle=True, drop_last=True, collate_fn=collate_prompts)
L.Trainer(max_epochs=1, limit_train_batches=15, callbacks=[history], **quiet).fit(ppo, loader)"""),
    ("code", """%matplotlib inline
import matplotlib.pyplot as plt

fig, axes = plt.subplots(1, 3, figsize=(12, 3))
for ax, key in zip(axes, ["reward/raw", "objective/kl", "gold/rollout"]):
    ax.plot([r[key] for r in history.rows]); ax.set_title(key); ax.set_xlabel("PPO iteration")
plt.tight_layout(); plt.show()"""),
    ("md", "## 4. PPO vs SFT under the gold judge (held-out prompts)"),
    ("code", """from lit_rlhf.evaluation.pairwise import format_table
from lit_rlhf.evaluation.compare import compare_with_gold
from omegaconf import OmegaConf

result = compare_with_gold(ppo.policy, sft_policy, tokenizer, gym,
                           OmegaConf.create({"split": "test", "samples_per_prompt": 2, "max_new_tokens": 24}), seed=0)
print(format_table(result["win_tie_loss"], "PPO", "SFT"))"""),
]

write_notebook(cells, "03_ppo")
