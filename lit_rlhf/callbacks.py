"""Lightning callbacks shared by the stages."""

from __future__ import annotations

import lightning as L
from lightning.pytorch.utilities import rank_zero_info

from lit_rlhf.evaluation.gold import judge_responses
from lit_rlhf.generation import generate


class GoldJudgeMonitor(L.Callback):
    """After validation, generate on gym prompts and log the gold judge's scores (monitoring only, never a loss).

    Logged as ``gold/overall`` and ``gold/<category>``, so any Lightning logger picks them up.
    """

    def __init__(self, gym, split: str = "val", every_n_epochs: int = 1, max_prompts: int = 64,
                 max_new_tokens: int = 24, temperature: float = 1.0, show_samples: int = 2, seed: int = 0):
        self.gym, self.split, self.every_n_epochs = gym, split, every_n_epochs
        self.max_prompts, self.max_new_tokens, self.temperature = max_prompts, max_new_tokens, temperature
        self.show_samples, self.seed = show_samples, seed

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or (trainer.current_epoch + 1) % self.every_n_epochs:
            return
        prompts = spread_over_categories(self.gym.prompts(self.split), self.max_prompts)
        responses = generate(pl_module.model, pl_module.tokenizer, [p.text for p in prompts],
                             max_new_tokens=self.max_new_tokens, temperature=self.temperature, seed=self.seed)
        scores = judge_responses(self.gym.judge, prompts, responses)
        for category, values in scores.items():
            pl_module.log(f"gold/{category}", values["overall"], rank_zero_only=True, sync_dist=False)
        for prompt, response in list(zip(prompts, responses))[: self.show_samples]:
            rank_zero_info(f"[epoch {trainer.current_epoch}] {prompt.text!r} -> {response!r}")


def spread_over_categories(prompts: list, n: int) -> list:
    """Up to ``n`` prompts taken round-robin across categories, so a small sample still covers each one."""
    by_category: dict[str, list] = {}
    for p in prompts:
        by_category.setdefault(p.category, []).append(p)
    queues = [iter(v) for _, v in sorted(by_category.items())]
    out: list = []
    while queues and len(out) < n:
        for queue in list(queues):
            item = next(queue, None)
            if item is None:
                queues.remove(queue)
            elif len(out) < n:
                out.append(item)
    return out


class RolloutSamplePrinter(L.Callback):
    """Every ``every_n_batches`` RL iterations, print a few prompts with the policy's sampled responses and rewards."""

    def __init__(self, every_n_batches: int = 10, n_samples: int = 2):
        self.every_n_batches, self.n_samples = every_n_batches, n_samples

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        rollout = getattr(pl_module, "last_rollout", None)
        if rollout is None or batch_idx % self.every_n_batches:
            return
        for prompt, response, reward in list(zip(rollout["prompts"], rollout["responses"], rollout["raw"]))[
                : self.n_samples]:
            rank_zero_info(f"[step {trainer.global_step}] reward={reward:+.3f} {prompt!r} -> {response!r}")
