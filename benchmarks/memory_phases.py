"""Where a PPO iteration's resident memory grows: the resident set after each phase of one iteration.

    python benchmarks/memory_phases.py 1B lit_lora_shared     # size and variant as in bench_memory.py

Builds one point of ``bench_memory.py`` (same models, workload and settings) and runs one iteration in this
process, printing the resident set (RSS) after building, around the rollout and around every minibatch's loss
forward and backward, each with the highest value sampled (every 50 ms) since the line before. Also prints how
many blocks ran under activation checkpointing in each loss forward, so a reader can see whether it was on.
"""

from __future__ import annotations

import sys
import tempfile
import threading
import time
from pathlib import Path

import bench_memory


def main(argv: list[str]) -> int:
    import psutil
    import transformers.modeling_utils

    from lit_rlhf.ppo.module import PPOModule

    size, variant = argv[0], argv[1] if len(argv) > 1 else "lit_lora_shared"
    process, peak = psutil.Process(), [0.0]

    def sample() -> None:
        while True:
            peak[0] = max(peak[0], process.memory_info().rss / 1e9)
            time.sleep(0.05)

    def mark(what: str) -> None:
        print(f"{what:34s} RSS {process.memory_info().rss / 1e9:6.2f} GB  peak since the line before {peak[0]:6.2f} GB")
        peak[0] = 0.0

    checkpointed = [0]
    checkpoint = transformers.modeling_utils.checkpoint

    def counted_checkpoint(*args, **kwargs):
        checkpointed[0] += 1
        return checkpoint(*args, **kwargs)

    transformers.modeling_utils.checkpoint = counted_checkpoint

    def around(name: str, before: str, after: str):
        method = getattr(PPOModule, name)

        def wrapped(self, *args, **kwargs):
            mark(before)
            checkpointed[0] = 0
            out = method(self, *args, **kwargs)
            mark(after + (f" ({checkpointed[0]} blocks checkpointed)" if name == "_ppo_losses" else ""))
            return out

        setattr(PPOModule, name, wrapped)

    around("make_experience", "models built", "rollout done")
    around("_ppo_losses", "  before the loss forward", "  after the loss forward")
    around("manual_backward", "  before backward", "  after backward")
    threading.Thread(target=sample, daemon=True).start()
    with tempfile.TemporaryDirectory() as tmp:
        bench_memory.write_reward_model(Path(tmp) / "reward")
        bench_memory.run_lit(variant, size, Path(tmp) / "reward", warmup=0)  # one iteration (ITERATIONS)
    mark("end")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
