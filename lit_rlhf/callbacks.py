"""Lightning callbacks shared by the stages."""

from __future__ import annotations

import resource
import sys
import time

import lightning as L
import torch
from lightning.pytorch.callbacks import ProgressBar
from lightning.pytorch.utilities import rank_zero_info

from lit_rlhf.data.errors import ConfigError
from lit_rlhf.evaluation.gold import judge_responses
from lit_rlhf.generation import generate


class GoldJudgeMonitor(L.Callback):
    """After validation, generate on gym prompts and log the gold judge's scores (monitoring only, never a loss).

    Logged as ``gold/overall`` and ``gold/<category>``, so any Lightning logger picks them up.
    """

    def __init__(
        self,
        gym,
        split: str = "val",
        every_n_epochs: int = 1,
        max_prompts: int = 64,
        max_new_tokens: int = 24,
        temperature: float = 1.0,
        show_samples: int = 2,
        seed: int = 0,
    ):
        self.gym, self.split, self.every_n_epochs = gym, split, every_n_epochs
        self.max_prompts, self.max_new_tokens, self.temperature = max_prompts, max_new_tokens, temperature
        self.show_samples, self.seed = show_samples, seed

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or (trainer.current_epoch + 1) % self.every_n_epochs:
            return
        prompts = spread_over_categories(self.gym.prompts(self.split), self.max_prompts)
        responses = generate(
            pl_module.model,
            pl_module.tokenizer,
            [p.text for p in prompts],
            max_new_tokens=self.max_new_tokens,
            temperature=self.temperature,
            seed=self.seed,
        )
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
            : self.n_samples
        ]:
            rank_zero_info(f"[step {trainer.global_step}] reward={reward:+.3f} {prompt!r} -> {response!r}")


class BatchCost(L.Callback):
    """What each training batch costs, logged as ``perf/batch_seconds`` (wall), ``perf/batch_cpu_seconds`` (this
    process's CPU time, steadier than wall time on a shared machine) and ``perf/peak_memory_mb``.

    For PPO a batch is one iteration: the rollout and all of its updates. The peak is the accelerator's
    allocator peak on CUDA, else the process's resident-set peak (which includes the Python runtime, about
    0.5 GB, so small models differ little on CPU).
    """

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        self._wall, self._cpu = time.perf_counter(), time.process_time()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        cost = {
            "perf/batch_seconds": time.perf_counter() - self._wall,
            "perf/batch_cpu_seconds": time.process_time() - self._cpu,
            "perf/peak_memory_mb": peak_memory_mb(pl_module.device),
        }
        pl_module.log_dict(cost, on_step=True, on_epoch=False, rank_zero_only=True, sync_dist=False)


def peak_memory_mb(device: torch.device) -> float:
    """The allocator's peak on a CUDA device, else this process's peak resident set, in MiB."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes on macOS, KiB on Linux


class LogProgressBar(ProgressBar):
    """Training progress as plain log lines, for output that goes to a file or a pipe:
    ``epoch 2/8 step 120/500 (24%) 3.10 batches/s train/loss=0.6931``.

    A line after the first batch of each epoch, then after every ``every_n_batches`` batches (when given) or
    ``every_seconds`` seconds, whichever comes first, and at the end of each epoch; validation and test one line
    each when they finish. Lines go through Lightning's rank-zero logger, like the rest of a stage's output.
    ``build_trainer`` uses it instead of the terminal progress bar when stdout is not a terminal.
    """

    def __init__(self, every_seconds: float = 30.0, every_n_batches: int | None = None):
        super().__init__()
        if every_seconds <= 0 or (every_n_batches is not None and every_n_batches < 1):
            raise ConfigError(
                f"LogProgressBar needs every_seconds > 0 and every_n_batches >= 1 or null, "
                f"got {every_seconds} and {every_n_batches}"
            )
        self.every_seconds, self.every_n_batches = every_seconds, every_n_batches
        self.enabled = True
        self._epoch_start = self._last_line = 0.0
        self._batches_logged = 0

    def disable(self) -> None:
        self.enabled = False

    def enable(self) -> None:
        self.enabled = True

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._epoch_start = self._last_line = time.monotonic()
        self._batches_logged = 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        done, now = batch_idx + 1, time.monotonic()
        due = (
            done == 1
            or now - self._last_line >= self.every_seconds
            or (self.every_n_batches is not None and done % self.every_n_batches == 0)
        )
        if due:
            self._log_train(trainer, pl_module, done, now)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        done = trainer.fit_loop.epoch_loop.batch_progress.current.completed
        if done and done != self._batches_logged:
            self._log_train(trainer, pl_module, done, time.monotonic())

    def on_validation_end(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking:
            self._log(f"epoch {trainer.current_epoch + 1} validation done: {self._metrics(trainer, pl_module)}")

    def on_test_end(self, trainer, pl_module) -> None:
        self._log(f"test done: {self._metrics(trainer, pl_module)}")

    def _log_train(self, trainer, pl_module, done: int, now: float) -> None:
        self._last_line, self._batches_logged = now, done
        max_epochs = trainer.max_epochs if trainer.max_epochs not in (None, -1) else "?"
        total = self.total_train_batches
        step = f"step {done}/{total} ({100 * done / total:.0f}%)" if total not in (0, float("inf")) else f"step {done}"
        rate = done / max(now - self._epoch_start, 1e-9)
        self._log(
            f"epoch {trainer.current_epoch + 1}/{max_epochs} {step} {rate:.2f} batches/s "
            f"{self._metrics(trainer, pl_module)}"
        )

    def _metrics(self, trainer, pl_module) -> str:
        metrics = {k: v for k, v in self.get_metrics(trainer, pl_module).items() if k != "v_num"}
        return " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items())

    def _log(self, line: str) -> None:
        if self.enabled:
            rank_zero_info(line)


# Trainer arguments whose values are checked before a stage starts: a wrong type would otherwise surface as a
# long traceback from inside Lightning, only when the Trainer is built, after models were loaded and evaluated.
