"""``lit-rlhf-pipeline``: every stage in order, each reading the previous stage's output from disk."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from lit_rlhf.cli.train import user_error
from lit_rlhf.data.errors import ConfigError
from lit_rlhf.provenance import stale_reasons
from lit_rlhf.run import compose, stage_config, stage_overrides, stage_plan, train


def run_pipeline(
    overrides: list[str] | None = None,
    only: list[str] | None = None,
    force: list[str] | None = None,
    plan: list[dict] | str | None = None,
) -> dict:
    """Run the planned stages. A stage with a ``results.json`` is skipped unless named in ``force``, a stage it
    ``needs`` ran in this call, or what it would be made from now (its config, its inputs' ids: see
    ``lit_rlhf.provenance``) differs from what its output was made from."""
    plan = plan if isinstance(plan, list) else stage_plan(plan, overrides)  # a plan's name or path: run.PLANS
    overrides = stage_overrides(overrides)
    names = [s["name"] for s in plan]
    for requested in (only or []) + [f for f in (force or []) if f != "all"]:
        if requested not in names:
            raise ConfigError(f"unknown pipeline stage {requested!r}; stages: {names}")
    summaries: dict[str, dict] = {}
    ran: set[str] = set()
    for index, stage in enumerate(plan, start=1):
        if only and stage["name"] not in only:
            continue
        forced = force and (stage["name"] in force or "all" in force)
        restart = ["resume=false"] if forced else []  # --force retrains from the start, not from the last checkpoint
        cfg = compose([*stage.get("overrides", []), *(overrides or []), *restart])
        done = Path(cfg.output_dir) / "results.json"
        stale = sorted(ran & set(stage.get("needs", [])))
        print(f"\n##### [{index}/{len(plan)}] {stage['name']} -> {cfg.output_dir}", flush=True)
        if stale and done.exists() and not forced:
            print(f"      {', '.join(stale)} ran again, so this stage runs again", flush=True)
        reusable = done.exists() and not forced and not stale
        changed = stale_reasons(cfg) if reusable else []
        if changed:
            print(
                f"      what it is made from changed since it ran ({', '.join(changed[:5])}"
                f"{', ...' if len(changed) > 5 else ''}), so it runs again",
                flush=True,
            )
        elif reusable:
            print(f"      done before ({done}); skipped. Re-run it with --force {stage['name']}", flush=True)
            summaries[stage["name"]] = {"skipped": True, "results": str(done)}
            continue
        started = time.monotonic()
        summaries[stage["name"]] = train(cfg)
        ran.add(stage["name"])
        print(f"      {stage['name']} finished in {time.monotonic() - started:.0f}s", flush=True)
    return summaries


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="lit-rlhf-pipeline",
        description="SFT -> preference data -> reward model -> PPO -> DPO, on the "
        "embedded gym by default. Extra arguments are Hydra overrides applied to every stage.",
    )
    parser.add_argument("overrides", nargs="*", help="e.g. paths.artifacts=/tmp/run seed=1")
    parser.add_argument("--only", nargs="+", metavar="STAGE", help="run just these stages")
    parser.add_argument(
        "--plan",
        default="gym",
        metavar="PLAN",
        help="gym (the built-in gym), files (your own model and files: see conf/pipeline_files.yaml, "
        "inputs.*=...), or the path of a plan file",
    )
    parser.add_argument("--force", nargs="+", metavar="STAGE", help="re-run these stages (or 'all') even if done")
    args = parser.parse_args(argv)
    try:
        run_pipeline(args.overrides, args.only, args.force, plan=args.plan)
    except Exception as err:  # a user's error ends in one line; anything else is a bug and keeps its traceback
        cause = user_error(err)
        if cause is None:
            raise
        parser.exit(2, f"lit-rlhf-pipeline: error: {cause}\n")
    report = Path(stage_config("eval", args.overrides, args.plan).output_dir) / "report.md"
    if report.exists():
        print(f"\nreport: {report}")
    return 0
