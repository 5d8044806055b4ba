"""Where a lit_rlhf PPO iteration spends its time, on ``bench_ppo.py``'s workload (one CPU thread).

    python benchmarks/profile_ppo.py                 # 1 warm-up + 5 timed iterations, then 2 under torch.profiler

Part 1 times the parts of each iteration with ``time.process_time`` by wrapping the functions
``PPOModule`` calls (sampling, the reward model, the whole rollout, the update's forwards and losses,
the backward passes); the rest of the iteration (optimizer steps, logging) is what is left over.
Part 2 runs iterations under ``torch.profiler`` and sums the operators' own CPU time: matrix
multiplications (with the FLOPs the profiler counts for them, in a second pass), attention, and the
largest others.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import torch
from bench_ppo import MINIBATCHES, NEW_TOKENS, PPO_EPOCHS, PROMPTS, build_lit_module, fit_lit, write_workload

MATMUL_OPS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm")
PARTS = (
    "backward passes",
    "update forwards and losses",
    "sampling (generate)",
    "rollout forwards",
    "reward model",
    "optimizer steps, logging, the rest",
)


class PartTimer:
    """CPU seconds spent inside wrapped callables, per iteration."""

    def __init__(self):
        self.iterations: list[dict[str, float]] = []
        self.wrapped: list[tuple[object, str, object]] = []

    def wrap(self, owner, name: str, part: str) -> None:
        original = getattr(owner, name)
        self.wrapped.append((owner, name, original))

        def timed(*args, **kwargs):
            start = time.process_time()
            try:
                return original(*args, **kwargs)
            finally:
                if self.iterations:
                    self.iterations[-1][part] += time.process_time() - start

        setattr(owner, name, timed)

    def start_iteration(self) -> None:
        self.iterations.append(defaultdict(float))

    def restore(self) -> None:
        for owner, name, original in reversed(self.wrapped):
            setattr(owner, name, original)


def time_parts(workdir: Path, warmup: int, iterations: int) -> dict[str, float]:
    """Median CPU seconds per iteration of each part (and ``"iteration"``) over the timed iterations."""
    import lightning as L

    from lit_rlhf.ppo import module as ppo_module

    timer = PartTimer()
    module, _ = build_lit_module(workdir)
    timer.wrap(ppo_module, "sample_rollout", "sampling (generate)")
    timer.wrap(ppo_module, "rollout_rewards", "reward model")
    timer.wrap(module, "make_experience", "rollout")
    timer.wrap(module, "_update_losses", "update forwards and losses")
    timer.wrap(module, "manual_backward", "backward passes")

    class Iterations(L.Callback):  # the whole iteration, from Lightning's hooks around training_step
        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            timer.start_iteration()
            self.start = time.process_time()

        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            timer.iterations[-1]["iteration"] = time.process_time() - self.start

    L.seed_everything(0, verbose=False)
    try:
        fit_lit(module, workdir, warmup + iterations, [Iterations()])
    finally:
        timer.restore()
    rows = []
    for parts in timer.iterations[warmup:]:
        row = dict(parts)
        row["rollout forwards"] = parts["rollout"] - parts["sampling (generate)"] - parts["reward model"]
        row["optimizer steps, logging, the rest"] = (
            parts["iteration"] - parts["rollout"] - parts["update forwards and losses"] - parts["backward passes"]
        )
        rows.append(row)
    return {part: statistics.median(r[part] for r in rows) for part in (*PARTS, "iteration")}


def operator_times(workdir: Path, iterations: int) -> tuple[dict[str, float], float, float]:
    """Own CPU seconds per iteration by operator, and the matrix multiplications' seconds and FLOPs per iteration.

    The FLOPs come from a separate pass: counting them (``with_flops``) doubles the operators' measured time.
    """
    from torch.profiler import ProfilerActivity, profile

    module, _ = build_lit_module(workdir)
    fit_lit(module, workdir, 1)  # warm-up outside the profile
    with profile(activities=[ProfilerActivity.CPU]) as timed:
        fit_lit(module, workdir, iterations)
    own = {e.key: e.self_cpu_time_total / 1e6 / iterations for e in timed.key_averages()}
    with profile(activities=[ProfilerActivity.CPU], with_flops=True) as counted:
        fit_lit(module, workdir, iterations)
    matmul_flops = sum(e.flops for e in counted.key_averages() if e.key in MATMUL_OPS) / iterations
    return own, sum(own.get(op, 0.0) for op in MATMUL_OPS), matmul_flops


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--iterations", type=int, default=5)
    parser.add_argument("--profiled", type=int, default=2, help="iterations under torch.profiler")
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        write_workload(workdir)
        parts = time_parts(workdir, args.warmup, args.iterations)
        own, matmul_s, matmul_flops = operator_times(workdir, args.profiled)
    print(
        f"workload: {PROMPTS} prompts x {NEW_TOKENS} new tokens, {PPO_EPOCHS} PPO epochs x {MINIBATCHES} "
        f"minibatches, 1 CPU thread; medians over {args.iterations} iterations (+{args.warmup} warm-up)"
    )
    print(f"{'part':40s} {'CPU s/it':>9s}")
    for part in PARTS:
        print(f"{part:40s} {parts[part]:9.3f}")
    print(f"{'whole iteration':40s} {parts['iteration']:9.3f}")
    profiled_total = sum(own.values())
    print(
        f"\ntorch.profiler, {args.profiled} iterations: {profiled_total:.3f} CPU s/it of operators; matrix "
        f"multiplications {matmul_s:.3f} s/it ({matmul_s / profiled_total:.0%}), {matmul_flops / 1e9:.1f} GFLOP/it "
        f"at {matmul_flops / 1e9 / matmul_s:.0f} GFLOP/s"
    )
    attention = {k: v for k, v in own.items() if "attention" in k}
    print("attention operators:", ", ".join(f"{k} {v:.3f} s/it" for k, v in attention.items()) or "none")
    print("largest operators by own CPU time (s/it):")
    for key, seconds in sorted(own.items(), key=lambda kv: -kv[1])[:10]:
        print(f"  {key:50s} {seconds:.3f}")


if __name__ == "__main__":
    main()
