"""Wall time of the whole default pipeline, stage by stage, and of resuming it once everything is done.

    python benchmarks/bench_pipeline.py                  # fresh artifacts in a temporary folder
    python benchmarks/bench_pipeline.py --keep /tmp/run  # keep the artifacts (and the report)

Runs ``lit-rlhf-pipeline``'s stages in this process on a fresh artifacts folder, timing each one,
then runs the pipeline again: every stage is found done and skipped, which is what a killed and
restarted pipeline pays before it gets back to work. Prints seconds per stage, each stage's share of
the total, the total against the 15-minute budget for the embedded default on 2 CPU cores, and the
resume time against the fresh run. Wall times depend on the machine and on whatever else it runs.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

BUDGET_S = 15 * 60


def timed_pipeline(artifacts: str) -> tuple[dict[str, float], float]:
    from lit_rlhf.pipeline import run_pipeline
    from lit_rlhf.run import compose, stage_plan, train

    seconds = {}
    for stage in stage_plan():
        cfg = compose(list(stage.get("overrides", [])) + [f"paths.artifacts={artifacts}"])
        started = time.perf_counter()
        train(cfg)
        seconds[stage["name"]] = time.perf_counter() - started
    started = time.perf_counter()
    summaries = run_pipeline([f"paths.artifacts={artifacts}"])
    resume = time.perf_counter() - started
    if not all(s.get("skipped") is True for s in summaries.values()):
        raise RuntimeError(f"the second run should skip every stage: {summaries}")
    return seconds, resume


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", help="artifacts folder to use and keep (default: a temporary one)")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with tempfile.TemporaryDirectory() as tmp:
        seconds, resume = timed_pipeline(args.keep or tmp)
    total = sum(seconds.values())
    print(f"\n{'stage':<14}{'seconds':>9}{'share':>8}")
    for name, s in seconds.items():
        print(f"{name:<14}{s:>9.1f}{s / total:>8.0%}")
    print(f"{'total':<14}{total:>9.1f}   = {total / BUDGET_S:.2f} × the 15-minute budget")
    print(f"{'resume (all done)':<18}{resume:>5.1f}   = {resume / total:.3f} × the fresh run")


if __name__ == "__main__":
    main()
