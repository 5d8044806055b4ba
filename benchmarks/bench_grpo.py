"""Seconds per critic-free RL iteration: lit_rlhf's PPOModule (GRPO, RLOO) vs TRL 1.16's GRPOTrainer and RLOOTrainer.

    python benchmarks/bench_grpo.py                 # 3 repeats per variant, alternated
    python benchmarks/bench_grpo.py --skip-trl      # lit_rlhf only (lit_grpo, lit_rloo)

Workload (both libraries), one iteration: 4 prompts x k=4 sampled answers = 16 answers of at most 32 new tokens
(sampling at temperature 1, top-p 1, no top-k, stopped at EOS on both sides, as in ``bench_ppo.py``; the mean
answer lengths are reported), scored by a tiny decoder reward model (``build_reward_model("embedded")``, seed 1),
one rollout forward for the old log-probs and one through a frozen reference (the policy's initial weights),
then 1 epoch of 2 minibatches of 8 answers: 2 AdamW steps per iteration (fused kernels on both sides, learning
rate ``bench_ppo.LR``, constant, no weight decay, no gradient clipping). The policy is the embedded tiny Llama
(``build_policy("embedded", seed=0)``), written once as an HF checkpoint with the reward model by
``bench_ppo.write_workload`` (the first 4 of its prompts), so both sides load the same weights. KL coefficient
β = ``bench_ppo.KL_COEF`` (0.05) on both sides. One CPU thread everywhere (``torch.set_num_threads(1)``).

How each side is set up (``LIT_SETTINGS``, ``TRL_SETTINGS``):

- optimizer steps: lit_rlhf ``ppo_epochs=1`` x ``num_minibatches=2``; TRL ``num_iterations`` (μ) = 1,
  ``steps_per_generation=2`` with ``per_device_train_batch_size=8`` and ``gradient_accumulation_steps=1``, so one
  generation batch of 16 answers feeds 2 optimizer steps of 8 (and TRL computes the old log-probs in a forward
  of their own, as lit_rlhf always does, since the second step is off-policy).
- GRPO: ``advantage_estimator="grpo"`` (group mean and std, Bessel-corrected, + 1e-4: TRL's
  ``scale_rewards="group"``), the KL as a loss term with the k3 estimator (``kl_penalty="loss"``,
  ``kl_estimator="k3"``; TRL's ``beta``, whose GRPO default 0 would drop the reference), each answer's token mean
  first (``loss_aggregation="sequence"``; TRL ``loss_type="grpo"``, not its default ``"dapo"``).
- RLOO: ``advantage_estimator="rloo"``, the KL in the reward (``kl_penalty="reward"``, k1 summed over the answer:
  TRL RLOO's own and only way, ``beta=0.05`` its default), no advantage normalisation (TRL's default).

What is not the same: TRL's RLOO takes one importance ratio per answer (the sum of its token log-ratios) where
lit_rlhf's loss takes one per token (``loss_aggregation="sequence"`` is the nearest). TRL's reward model reads
decoded prompt + answer text, re-tokenized (its reward-model path); lit_rlhf's reads the rollout's token ids (the
reward model shares the policy's tokenizer), plus an EOS on answers cut at 32 tokens. TRL computes log-probs with a
chunked fused LM head, the entropy at every update, and the gradient norm at every step (for logging; it clips
nothing with ``max_grad_norm=0``); lit_rlhf logs the entropy too. The prompts reach TRL as text that tokenizes to
exactly lit_rlhf's prompt ids (checked in the TRL process).

TRL runs in its own virtualenv (``~/.cache/lit_rlhf/venv-trl-1.16.0``, or ``$LIT_RLHF_TRL1_VENV``; made on first
use with pinned torch, trl and the same transformers as lit_rlhf's environment, by ``bench_ppo.ensure_venv``) as a
subprocess that loads the same checkpoints and prints JSON. Variants (``lit_grpo``, ``lit_rloo``, ``trl_grpo``,
``trl_rloo``), each a fresh process, are alternated ``--repeats`` times (the machine is shared and noisy). Each run
does ``--warmup`` untimed iterations then ``--iterations`` timed ones and reports the median over its timed
iterations of CPU time (``time.process_time``: with one thread it counts the work and barely depends on other jobs)
and wall time; the table shows medians over repeats and the ratio lit_rlhf / TRL per estimator. Results go to
``benchmarks/results/bench_grpo.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import torch
from bench_ppo import KL_COEF, LR, NEW_TOKENS, IterationClock, alternate_children, ensure_venv, write_workload

PROMPTS, SAMPLES, EPOCHS, MINIBATCHES = 4, 4, 1, 2
ANSWERS = PROMPTS * SAMPLES
TRL_VERSION = "1.16.0"
# Outside the repository, so the 1.5 GB environment can never be committed by accident.
TRL_VENV = Path(os.environ.get("LIT_RLHF_TRL1_VENV", Path.home() / ".cache" / "lit_rlhf" / f"venv-trl-{TRL_VERSION}"))
TRL_PINS = ["torch==2.13.0", f"trl=={TRL_VERSION}"]
ESTIMATORS = ("grpo", "rloo")
VARIANTS = ("lit_grpo", "lit_rloo", "trl_grpo", "trl_rloo")
RESULTS = Path(__file__).parent / "results"

# lit_rlhf: PPOConfig settings beyond bench_ppo's workload ones (max_new_tokens, kl_coef, no clipping, no baseline)
LIT_SETTINGS = {
    "grpo": dict(advantage_estimator="grpo", kl_penalty="loss", kl_estimator="k3", loss_aggregation="sequence"),
    "rloo": dict(advantage_estimator="rloo", kl_penalty="reward", kl_estimator="k1", loss_aggregation="sequence"),
}
LIT_COMMON = dict(samples_per_prompt=SAMPLES, ppo_epochs=EPOCHS, num_minibatches=MINIBATCHES)
# TRL: GRPOConfig / RLOOConfig settings (the rest are TRL's defaults)
TRL_COMMON = dict(
    per_device_train_batch_size=ANSWERS // MINIBATCHES,  # answers per optimizer step
    gradient_accumulation_steps=1,
    steps_per_generation=MINIBATCHES,  # optimizer steps per generation batch of PROMPTS x SAMPLES answers
    num_iterations=EPOCHS,  # μ: passes over each generation batch
    num_generations=SAMPLES,
    max_completion_length=NEW_TOKENS,
    learning_rate=LR,
    lr_scheduler_type="constant",
    beta=KL_COEF,
    temperature=1.0,
    top_p=1.0,
    top_k=0,
    max_grad_norm=0.0,  # no clipping
    gradient_checkpointing=False,  # TRL's default is on; lit_rlhf's is off
    bf16=False,  # TRL's default is bf16 autocast; lit_rlhf runs float32
    use_cpu=True,
    seed=0,
    report_to="none",
    save_strategy="no",
    logging_steps=1,
    disable_tqdm=True,
    dataloader_num_workers=0,
)
TRL_SETTINGS = {"grpo": dict(loss_type="grpo", scale_rewards="group"), "rloo": dict(normalize_advantages=False)}


def describe_optimizer(optimizer) -> str:
    """``AdamW(fused=True)``: the optimizer's class and whether it runs fused kernels."""
    return f"{type(optimizer).__name__}(fused={optimizer.defaults.get('fused')})"


# ---- lit_rlhf side ---------------------------------------------------------------------------------
def run_lit(estimator: str, workdir: Path, warmup: int, iterations: int) -> dict:
    import lightning as L
    from bench_memory import _lit_clock
    from bench_ppo import build_lit_module, fit_lit

    L.seed_everything(0, verbose=False)
    module, reward = build_lit_module(workdir, **LIT_COMMON, **LIT_SETTINGS[estimator])
    clock, lengths = _lit_clock(L)
    fit_lit(module, workdir, warmup + iterations, [clock], prompts=PROMPTS)
    return {
        **clock.clock.intervals(warmup),
        "optimizer_steps": module.trainer.global_step,  # manual optimization: one per optimizer.step()
        "optimizer": describe_optimizer(module.optimizers().optimizer),
        "answer_tokens": statistics.fmean(lengths),
        "reward_input": "token ids" if reward.reads_tokens_of(module.tokenizer) else "decoded text",
    }


# ---- TRL side (runs inside the TRL virtualenv: no lit_rlhf imports here) -----------------------------
def run_trl(estimator: str, workdir: Path, warmup: int, iterations: int) -> dict:
    import accelerate
    import transformers
    import trl
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer, TrainerCallback

    Trainer, Config = {
        "grpo": (trl.GRPOTrainer, trl.GRPOConfig),
        "rloo": (trl.RLOOTrainer, trl.RLOOConfig),
    }[estimator]

    class Clock(TrainerCallback):
        """One tick per iteration: every ``steps_per_generation`` optimizer steps (one generation batch)."""

        def __init__(self):
            self.clock, self.lengths = IterationClock(), []

        def on_train_begin(self, args, state, control, **kwargs):
            self.clock.start()

        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step % (MINIBATCHES * EPOCHS) == 0:
                self.clock.tick()

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "completions/mean_length" in logs:
                self.lengths.append(float(logs["completions/mean_length"]))

    transformers.set_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(workdir / "policy")
    policy = AutoModelForCausalLM.from_pretrained(workdir / "policy")
    reward = AutoModelForSequenceClassification.from_pretrained(workdir / "reward", num_labels=1)
    rows = json.loads((workdir / "prompts.json").read_text())[:PROMPTS]
    texts = [tokenizer.decode(r["input_ids"]) for r in rows]
    for text, row in zip(texts, rows):  # TRL tokenizes the prompt text itself: the same ids as lit_rlhf's
        if tokenizer(text)["input_ids"] != row["input_ids"]:
            raise ValueError(f"prompt text {text!r} does not tokenize back to lit_rlhf's ids")
    steps = (warmup + iterations) * MINIBATCHES * EPOCHS
    args = Config(
        output_dir=str(workdir / f"trl_{estimator}"), max_steps=steps, **TRL_COMMON, **TRL_SETTINGS[estimator]
    )
    trainer = Trainer(
        model=policy,
        reward_funcs=reward,
        args=args,
        train_dataset=Dataset.from_dict({"prompt": texts}),
        processing_class=tokenizer,
    )
    clock = Clock()
    trainer.add_callback(clock)
    trainer.train()
    return {
        **clock.clock.intervals(warmup),
        "optimizer_steps": trainer.state.global_step,
        "answer_tokens": statistics.fmean(clock.lengths),
        "optimizer": describe_optimizer(getattr(trainer.optimizer, "optimizer", trainer.optimizer)),
        "versions": {
            "trl": trl.__version__,
            "transformers": transformers.__version__,
            "torch": torch.__version__,
            "accelerate": accelerate.__version__,
        },
    }


# ---- driver ------------------------------------------------------------------------------------------
def _summary(results: dict[str, list[dict]]) -> dict[str, dict]:
    """Per variant that ran: medians over repeats of each run's median seconds per iteration."""
    return {
        variant: {
            "cpu_sec_per_iter": statistics.median(r["cpu_sec_per_iter"] for r in runs),
            "sec_per_iter": statistics.median(r["sec_per_iter"] for r in runs),
            "answer_tokens": statistics.fmean(r["answer_tokens"] for r in runs),
            "optimizer": runs[0]["optimizer"],
        }
        for variant, runs in results.items()
        if runs
    }


def _ratios(summary: dict[str, dict]) -> dict[str, dict]:
    """lit_rlhf / TRL per estimator, where both ran."""
    return {
        est: {
            "cpu": summary[f"lit_{est}"]["cpu_sec_per_iter"] / summary[f"trl_{est}"]["cpu_sec_per_iter"],
            "wall": summary[f"lit_{est}"]["sec_per_iter"] / summary[f"trl_{est}"]["sec_per_iter"],
        }
        for est in ESTIMATORS
        if f"lit_{est}" in summary and f"trl_{est}" in summary
    }


def _table(results: dict[str, list[dict]], summary: dict, ratios: dict, trl_note: str) -> list[str]:
    """The printed table: one row per variant that ran, then lit_rlhf / TRL per estimator (or why TRL did not run)."""
    lines = [
        f"{'variant':10s} {'CPU s/it':>9s} {'wall s/it':>10s} {'CPU s/it of each run':>24s} {'answer tokens':>14s}"
        "  optimizer"
    ]
    for variant, row in summary.items():
        per_run = " ".join(f"{r['cpu_sec_per_iter']:.3f}" for r in results[variant])
        lines.append(
            f"{variant:10s} {row['cpu_sec_per_iter']:9.3f} {row['sec_per_iter']:10.3f} {per_run:>24s} "
            f"{row['answer_tokens']:14.1f}  {row['optimizer']}"
        )
    for est, ratio in ratios.items():
        lines.append(
            f"lit_rlhf / TRL ({est}): {ratio['cpu']:.2f}x CPU time, {ratio['wall']:.2f}x wall time per iteration"
        )
    trl_ran = [v for v, runs in results.items() if v.startswith("trl") and runs]
    if len(trl_ran) < sum(v.startswith("trl") for v in results) or not trl_ran:
        lines.append(f"TRL not run: {trl_note}")
    return lines


def _lit_versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    def installed(package: str) -> str | None:
        try:
            return version(package)
        except PackageNotFoundError:
            return None

    return {p: installed(p) for p in ("lit_rlhf", "torch", "transformers", "lightning")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument("--skip-trl", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS / "bench_grpo.json", help="JSON results file")
    parser.add_argument("--variant", choices=VARIANTS, help=argparse.SUPPRESS)  # child-process mode
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.variant:
        side, estimator = args.variant.split("_")
        run = run_trl if side == "trl" else run_lit
        print(json.dumps({"variant": args.variant, **run(estimator, Path(args.workdir), args.warmup, args.iterations)}))
        return
    variants = [v for v in VARIANTS if v in args.variants and not (args.skip_trl and v.startswith("trl"))]
    command = shlex.join(["python", "benchmarks/bench_grpo.py", *sys.argv[1:]])
    trl_python, trl_note = None, "--skip-trl" if args.skip_trl else "no trl_* variant asked for"
    if any(v.startswith("trl") for v in variants):
        trl_python, trl_note = ensure_venv(TRL_VENV, TRL_PINS, "trl.trainer.grpo_trainer, trl.trainer.rloo_trainer")
    print(f"command: {command}\nTRL: {TRL_VENV} ({trl_note})", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        write_workload(workdir)
        results, trl_note = alternate_children(variants, workdir, args, trl_python, trl_note, script=__file__)
    summary, trl_runs = _summary(results), [r for v, runs in results.items() if v.startswith("trl") for r in runs]
    ratios = _ratios(summary)
    table = _table(results, summary, ratios, trl_note)
    print(
        f"workload: {PROMPTS} prompts x {SAMPLES} answers x <= {NEW_TOKENS} new tokens, {EPOCHS} epoch x "
        f"{MINIBATCHES} minibatches, 1 CPU thread; {args.repeats} repeats x {args.iterations} timed iterations "
        f"(+{args.warmup} warm-up); medians over repeats"
    )
    print("\n".join(table))
    report = {
        "command": command,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "versions": {"lit_rlhf_env": _lit_versions(), "trl_env": trl_runs[0]["versions"] if trl_runs else None},
        "trl_venv": str(TRL_VENV),
        "trl_note": trl_note,
        "workload": {
            "prompts": PROMPTS,
            "samples_per_prompt": SAMPLES,
            "max_new_tokens": NEW_TOKENS,
            "epochs": EPOCHS,
            "minibatches": MINIBATCHES,
            "learning_rate": LR,
            "kl_coef": KL_COEF,
            "repeats": args.repeats,
            "warmup_iterations": args.warmup,
            "timed_iterations": args.iterations,
            "threads": 1,
        },
        "settings": {
            **{f"lit_{e}": {**LIT_COMMON, **s} for e, s in LIT_SETTINGS.items()},
            **{f"trl_{e}": {**TRL_COMMON, **s} for e, s in TRL_SETTINGS.items()},
        },
        "points": [{"variant": v, **row, "runs": results[v]} for v, row in summary.items()],
        "ratios_lit_over_trl": ratios,
        "table": table,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"results: {args.out}")


if __name__ == "__main__":
    main()
