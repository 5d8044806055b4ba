"""Seconds per DPO step: lit_rlhf's DPOModule vs TRL 1.16's DPOTrainer, same model, pairs and batch.

    python benchmarks/bench_dpo.py                  # 3 repeats per variant, alternated
    python benchmarks/bench_dpo.py --skip-trl       # lit_rlhf only

Workload (both libraries): the embedded tiny Llama policy (``build_policy("embedded", seed=0)``, written once as
an HF checkpoint) on gym preference pairs (gym seed 0, train split, 2 pairs per prompt), ``PAIRS`` pairs per
optimizer step, the chosen and the rejected answers of a batch in one forward (both libraries concatenate them),
each batch padded to its longest sequence and drawn in random order (neither side groups by length), the
sigmoid DPO loss at β = 0.1 on summed answer log-probs, AdamW (fused kernels on both sides) at one constant
learning rate, no weight decay, gradients clipped at 1.0. One CPU thread everywhere.

The reference: lit_rlhf scores every pair with the frozen reference once before training and keeps only the
log-probs (``DPODataModule.cache_reference_logps``); ``trl_dpo`` does the same (``precompute_ref_log_probs``),
so both time the policy's steps alone. ``trl_dpo_live`` is TRL's default, a reference forward in every step.

TRL sees the pairs as text: the prompt as lit_rlhf's chat template writes it, each answer after a space, and TRL
appends the EOS token itself; the TRL process checks that its token ids equal lit_rlhf's for every pair. What is
not the same: TRL logs more per step (the chosen and rejected rewards, margins and logits' means) and computes
the logits at every position; lit_rlhf computes them at every position too.

TRL runs in its own virtualenv (``bench_grpo.TRL_VENV``, made on first use by ``bench_ppo.ensure_venv``) as a
subprocess that loads the same checkpoint and prints JSON. Variants, each a fresh process, alternate
``--repeats`` times; each does ``--warmup`` untimed steps and ``--iterations`` timed ones and reports the median
CPU time (``time.process_time``) and wall time per step; the table gives medians over repeats and the ratio
lit_rlhf / TRL. Results go to ``benchmarks/results/bench_dpo.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import torch
from bench_grpo import TRL_PINS, TRL_VENV, _lit_versions, describe_optimizer
from bench_ppo import LR, IterationClock, alternate_children, ensure_venv

PAIRS, BETA, MAX_LENGTH, CLIP = 16, 0.1, 128, 1.0
VARIANTS = ("lit_dpo", "trl_dpo", "trl_dpo_live")
RESULTS = Path(__file__).parent / "results"


def write_workload(workdir: Path, steps: int) -> None:
    """The policy checkpoint and ``PAIRS * steps`` pairs, as text and as lit_rlhf's token ids."""
    from lit_rlhf.dpo.data import DPODataset
    from lit_rlhf.gym import AlignmentGym
    from lit_rlhf.gym.comparisons import gym_preference_rows
    from lit_rlhf.models import build_policy, save_hf_checkpoint

    policy, tokenizer = build_policy("embedded", seed=0)
    save_hf_checkpoint(policy, tokenizer, workdir / "policy")
    rows = gym_preference_rows(AlignmentGym(seed=0), "train", pairs_per_prompt=2)[: PAIRS * steps]
    if len(rows) < PAIRS * steps:
        raise SystemExit(f"the gym has {len(rows)} pairs, fewer than {PAIRS * steps}: ask for fewer iterations")
    items = DPODataset(rows, tokenizer, MAX_LENGTH).items
    pairs = [
        {"prompt": r["prompt"], "chosen": r["chosen"], "rejected": r["rejected"], **item}
        for r, item in zip(rows, items)
    ]
    (workdir / "pairs.json").write_text(json.dumps(pairs))


# ---- lit_rlhf side ---------------------------------------------------------------------------------
def run_lit(variant: str, workdir: Path, warmup: int, iterations: int) -> dict:
    import functools

    import lightning as L

    from lit_rlhf.dpo.config import DPOConfig
    from lit_rlhf.dpo.data import DPOCollator, DPODataset, cache_reference_logps
    from lit_rlhf.dpo.module import DPOModule
    from lit_rlhf.models import build_policy
    from lit_rlhf.models.adapters import frozen_reference

    L.seed_everything(0, verbose=False)
    policy, tokenizer = build_policy(str(workdir / "policy"))
    pairs = json.loads((workdir / "pairs.json").read_text())
    dataset = DPODataset(pairs, tokenizer, MAX_LENGTH)
    collate = DPOCollator(tokenizer.pad_token_id)
    cache_reference_logps(frozen_reference(policy), dataset, collate)
    loader = torch.utils.data.DataLoader(dataset, batch_size=PAIRS, shuffle=True, collate_fn=collate)
    module = DPOModule(
        policy, tokenizer, DPOConfig(beta=BETA), optimizer=functools.partial(torch.optim.AdamW, lr=LR, weight_decay=0)
    )

    class Clock(L.Callback):
        def __init__(self):
            self.clock = IterationClock()

        def on_train_start(self, trainer, pl_module):
            self.clock.start()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            self.clock.tick()

    clock = Clock()
    trainer = L.Trainer(
        accelerator="cpu",
        max_steps=warmup + iterations,
        gradient_clip_val=CLIP,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        callbacks=[clock],
    )
    trainer.fit(module, loader)
    return {
        **clock.clock.intervals(warmup),
        "optimizer_steps": trainer.global_step,
        "optimizer": describe_optimizer(module.optimizers().optimizer),
    }


# ---- TRL side (runs inside the TRL virtualenv: no lit_rlhf imports here) -----------------------------
def run_trl(variant: str, workdir: Path, warmup: int, iterations: int) -> dict:
    import transformers
    import trl
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback

    class Clock(TrainerCallback):
        def __init__(self):
            self.clock = IterationClock()

        def on_train_begin(self, args, state, control, **kwargs):
            self.clock.start()

        def on_step_end(self, args, state, control, **kwargs):
            self.clock.tick()

    transformers.set_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(workdir / "policy")
    policy = AutoModelForCausalLM.from_pretrained(workdir / "policy")
    pairs = json.loads((workdir / "pairs.json").read_text())
    texts = {"prompt": [], "chosen": [], "rejected": []}
    for pair in pairs:
        prompt_len = pair["chosen_prompt_len"]
        texts["prompt"].append(tokenizer.decode(pair["chosen_ids"][:prompt_len]))
        for side in ("chosen", "rejected"):
            answer = pair[f"{side}_ids"][pair[f"{side}_prompt_len"] :]
            texts[side].append(" " + tokenizer.decode([t for t in answer if t != tokenizer.eos_token_id]))
    args = trl.DPOConfig(
        output_dir=str(workdir / f"trl_{variant}"),
        max_steps=warmup + iterations,
        per_device_train_batch_size=PAIRS,
        gradient_accumulation_steps=1,
        learning_rate=LR,
        lr_scheduler_type="constant",
        warmup_steps=0,
        weight_decay=0.0,
        max_grad_norm=CLIP,
        beta=BETA,
        loss_type=["sigmoid"],
        max_length=MAX_LENGTH,
        precompute_ref_log_probs=variant == "trl_dpo",
        gradient_checkpointing=False,
        bf16=False,
        use_cpu=True,
        optim="adamw_torch_fused",
        seed=0,
        report_to="none",
        save_strategy="no",
        logging_steps=1,
        disable_tqdm=True,
        dataloader_num_workers=0,
    )
    trainer = trl.DPOTrainer(
        model=policy, args=args, train_dataset=Dataset.from_dict(texts), processing_class=tokenizer
    )
    for pair, row in zip(pairs, trainer.train_dataset):  # TRL tokenized the text itself: lit_rlhf's ids again
        for side in ("chosen", "rejected"):
            if row["prompt_ids"] + row[f"{side}_ids"] != pair[f"{side}_ids"]:
                raise ValueError(f"TRL's {side} ids differ from lit_rlhf's for prompt {pair['prompt']!r}")
    clock = Clock()
    trainer.add_callback(clock)
    trainer.train()
    return {
        **clock.clock.intervals(warmup),
        "optimizer_steps": trainer.state.global_step,
        "optimizer": describe_optimizer(getattr(trainer.optimizer, "optimizer", trainer.optimizer)),
        "versions": {"trl": trl.__version__, "transformers": transformers.__version__, "torch": torch.__version__},
    }


# ---- driver ------------------------------------------------------------------------------------------
def summarize(results: dict[str, list[dict]]) -> tuple[dict, dict]:
    """Per variant that ran, medians over repeats; and lit_rlhf / TRL against each TRL variant."""
    summary = {
        variant: {
            "cpu_sec_per_step": statistics.median(r["cpu_sec_per_iter"] for r in runs),
            "sec_per_step": statistics.median(r["sec_per_iter"] for r in runs),
            "optimizer": runs[0]["optimizer"],
        }
        for variant, runs in results.items()
        if runs
    }
    ratios = {
        trl_variant: {
            "cpu": summary["lit_dpo"]["cpu_sec_per_step"] / summary[trl_variant]["cpu_sec_per_step"],
            "wall": summary["lit_dpo"]["sec_per_step"] / summary[trl_variant]["sec_per_step"],
        }
        for trl_variant in ("trl_dpo", "trl_dpo_live")
        if "lit_dpo" in summary and trl_variant in summary
    }
    return summary, ratios


def table(results: dict[str, list[dict]], summary: dict, ratios: dict, trl_note: str) -> list[str]:
    lines = [f"{'variant':13s} {'CPU s/step':>11s} {'wall s/step':>12s} {'CPU s/step of each run':>26s}  optimizer"]
    for variant, row in summary.items():
        per_run = " ".join(f"{r['cpu_sec_per_iter']:.3f}" for r in results[variant])
        lines.append(
            f"{variant:13s} {row['cpu_sec_per_step']:11.3f} {row['sec_per_step']:12.3f} {per_run:>26s}  "
            f"{row['optimizer']}"
        )
    for trl_variant, ratio in ratios.items():
        lines.append(
            f"lit_rlhf / TRL ({trl_variant}): {ratio['cpu']:.2f}x CPU time, {ratio['wall']:.2f}x wall time per step"
        )
    if not any(v.startswith("trl") and runs for v, runs in results.items()):
        lines.append(f"TRL not run: {trl_note}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--iterations", type=int, default=20, help="timed optimizer steps")
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument("--skip-trl", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS / "bench_dpo.json", help="JSON results file")
    parser.add_argument("--variant", choices=VARIANTS, help=argparse.SUPPRESS)  # child-process mode
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.variant:
        run = run_trl if args.variant.startswith("trl") else run_lit
        print(
            json.dumps({"variant": args.variant, **run(args.variant, Path(args.workdir), args.warmup, args.iterations)})
        )
        return
    variants = [v for v in VARIANTS if v in args.variants and not (args.skip_trl and v.startswith("trl"))]
    command = shlex.join(["python", "benchmarks/bench_dpo.py", *sys.argv[1:]])
    trl_python, trl_note = None, "--skip-trl" if args.skip_trl else "no trl_* variant asked for"
    if any(v.startswith("trl") for v in variants):
        trl_python, trl_note = ensure_venv(TRL_VENV, TRL_PINS, "trl.trainer.dpo_trainer")
    print(f"command: {command}\nTRL: {TRL_VENV} ({trl_note})", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        write_workload(workdir, args.warmup + args.iterations)
        results, trl_note = alternate_children(variants, workdir, args, trl_python, trl_note, script=__file__)
    summary, ratios = summarize(results)
    lines = table(results, summary, ratios, trl_note)
    print(
        f"workload: {PAIRS} pairs per step (chosen and rejected in one forward), sigmoid loss, beta {BETA}, "
        f"1 CPU thread; {args.repeats} repeats x {args.iterations} timed steps (+{args.warmup} warm-up); medians"
    )
    print("\n".join(lines))
    trl_runs = [r for v, runs in results.items() if v.startswith("trl") for r in runs]
    report = {
        "command": command,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "versions": {"lit_rlhf_env": _lit_versions(), "trl_env": trl_runs[0]["versions"] if trl_runs else None},
        "trl_note": trl_note,
        "workload": {
            "pairs_per_step": PAIRS,
            "beta": BETA,
            "max_length": MAX_LENGTH,
            "learning_rate": LR,
            "grad_clip": CLIP,
            "repeats": args.repeats,
            "warmup_steps": args.warmup,
            "timed_steps": args.iterations,
            "threads": 1,
        },
        "points": [{"variant": v, **row, "runs": results[v]} for v, row in summary.items()],
        "ratios_lit_over_trl": ratios,
        "table": lines,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"results: {args.out}")


if __name__ == "__main__":
    main()
