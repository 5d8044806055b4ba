"""Seconds per PPO iteration: lit_rlhf's PPOModule vs TRL's PPOTrainer, same models and workload, side by side.

    python benchmarks/bench_ppo.py                 # 3 repeats per variant, alternated
    python benchmarks/bench_ppo.py --skip-trl      # lit_rlhf only (standard vs in-backward optimizer)

Workload (both libraries): 16 prompts x 32 new tokens sampled per iteration, 4 PPO epochs of
2 minibatches (8 optimizer steps per iteration), the embedded tiny Llama policy, a frozen copy
as reference, a critic initialised from a tiny decoder reward model, and a second tiny decoder
reward model (``build_reward_model("embedded")``) giving the rewards (it shares the policy's
tokenizer, so lit_rlhf, like TRL, scores the rollout's token ids). No gradient clipping
(TRL's PPO loop has none), no reward normalisation, no reference baseline (TRL has none).
One CPU thread everywhere (``torch.set_num_threads(1)``).

TRL removed PPO in 1.x; ``trl==0.29.1`` still ships it as ``trl.experimental.ppo``. It runs in
its own virtualenv (``~/.cache/lit_rlhf/venv-trl-0.29.1``, or ``$LIT_RLHF_TRL_VENV``; made on
first use with pinned torch, trl and the same transformers as lit_rlhf's environment) as a
subprocess that loads the same models from HF checkpoints written by this script and prints JSON.

Variants, each a fresh process, alternated ``--repeats`` times (the machine is shared and noisy):

- ``lit``: PPOModule with its default optimizer (one fused-kernel AdamW over actor and critic);
- ``lit_fused_backward``: the same with ``PPOConfig(fused_backward=True)`` (``FusedBackwardAdamW``,
  AdamW stepped inside backward);
- ``lit_compiled``: the same with ``PPOConfig(compile_update=True)`` (the update's forwards and losses
  through ``torch.compile``; its warm-up iteration holds the compiling, reported apart);
- ``trl``: TRL 0.29.1 ``PPOTrainer``.

Each run does ``--warmup`` untimed iterations then ``--iterations`` timed ones and reports the
median over its timed iterations of both CPU time (``time.process_time``: with one thread it
counts the work and barely depends on other jobs sharing the cores) and wall time; the table
shows medians over repeats. Peak live
gradient bytes are measured during the warm-up iteration (all ``.grad`` tensors alive at each
post-accumulate-grad event, maximum over every backward).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

PROMPTS, NEW_TOKENS, PPO_EPOCHS, MINIBATCHES = 16, 32, 4, 2
LR, KL_COEF = 1e-5, 0.05
# Outside the repository, so the 1 GB environment can never be committed by accident.
TRL_VENV = Path(os.environ.get("LIT_RLHF_TRL_VENV", Path.home() / ".cache" / "lit_rlhf" / "venv-trl-0.29.1"))
TRL_PINS = ["torch==2.13.0", "trl==0.29.1"]
VARIANTS = ("lit", "lit_fused_backward", "lit_compiled", "trl")


class GradObserver:
    """Peak bytes of all ``.grad`` tensors alive at any post-accumulate-grad event while ``active``."""

    def __init__(self, params):
        self.params, self.active, self.peak = [p for p in params if p.requires_grad], True, 0
        for p in self.params:
            p.register_post_accumulate_grad_hook(self.observe)

    def observe(self, _=None):
        if self.active:
            self.peak = max(
                self.peak, sum(p.grad.numel() * p.grad.element_size() for p in self.params if p.grad is not None)
            )


class IterationClock:
    """Wall and CPU time between consecutive iteration ends; the first interval starts at ``start()``.

    With one thread per process, CPU time (``time.process_time``) counts the work done and hardly
    depends on how many other jobs share the cores; wall time does.
    """

    def __init__(self):
        self.marks: list[tuple[float, float]] = []

    def start(self):
        self.marks = [(time.perf_counter(), time.process_time())]

    def tick(self):
        self.marks.append((time.perf_counter(), time.process_time()))

    def intervals(self, warmup: int) -> dict:
        wall = [b[0] - a[0] for a, b in zip(self.marks, self.marks[1:])][warmup:]
        cpu = [b[1] - a[1] for a, b in zip(self.marks, self.marks[1:])][warmup:]
        first_wall = self.marks[1][0] - self.marks[0][0] if warmup else None
        return {
            "sec_per_iter": statistics.median(wall),
            "cpu_sec_per_iter": statistics.median(cpu),
            "iter_times": wall,
            "iter_cpu_times": cpu,
            "first_iter_wall": first_wall,
        }


# ---- workload shared by both sides: written once as HF checkpoints -----------------------------------
def write_workload(workdir: Path) -> None:
    from lit_rlhf.data.formatting import encode_prompt
    from lit_rlhf.gym import AlignmentGym
    from lit_rlhf.models import build_policy, save_hf_checkpoint
    from lit_rlhf.reward.model import build_reward_model

    policy, tokenizer = build_policy("embedded", seed=0)
    save_hf_checkpoint(policy, tokenizer, workdir / "policy")
    for name, seed in (("reward", 1), ("critic", 2)):
        model, rm_tokenizer = build_reward_model("embedded", seed=seed)
        save_hf_checkpoint(model, rm_tokenizer, workdir / name)
    prompts = [p.text for p in AlignmentGym(seed=0).prompts("train")[:PROMPTS]]
    rows = [{"prompt": p, "input_ids": encode_prompt(tokenizer, p)} for p in prompts]
    (workdir / "prompts.json").write_text(json.dumps(rows))


def _count_bytes(params) -> int:
    return sum(p.numel() * p.element_size() for p in params if p.requires_grad)


# ---- lit_rlhf side ---------------------------------------------------------------------------------
def build_lit_module(workdir: Path, **config_changes):
    """The lit_rlhf side of the workload: a ``PPOModule`` over the checkpoints in ``workdir`` and its reward model.

    ``config_changes`` replace any of the workload's ``PPOConfig`` settings; a critic-free ``advantage_estimator``
    gets no critic."""
    from lit_rlhf.models import build_policy
    from lit_rlhf.ppo.config import PPOConfig
    from lit_rlhf.ppo.module import PPOModule
    from lit_rlhf.ppo.value_model import ValueModel
    from lit_rlhf.reward.model import RewardModel, build_reward_model

    policy, tokenizer = build_policy(str(workdir / "policy"))
    reward = RewardModel(*build_reward_model(str(workdir / "reward")))
    settings = dict(
        max_new_tokens=NEW_TOKENS,
        ppo_epochs=PPO_EPOCHS,
        num_minibatches=MINIBATCHES,
        reference_baseline=False,
        max_grad_norm=None,
        kl_coef=KL_COEF,
        whiten_advantages=True,
    )
    config = PPOConfig(**{**settings, **config_changes})
    critic = None
    if config.advantage_estimator == "gae":
        critic = ValueModel.from_reward_model(build_reward_model(str(workdir / "critic"))[0])
    return PPOModule(
        policy,
        tokenizer,
        reward.score,
        config,
        critic=critic,
        optimizer=functools.partial(torch.optim.AdamW, lr=LR),
        param_groups={},
    ), reward


def fit_lit(module, workdir: Path, iterations: int, callbacks=(), prompts: int = PROMPTS) -> None:
    """``iterations`` PPO iterations on the workload's first ``prompts`` prompts, one Lightning fit on one CPU
    device."""
    import lightning as L
    from torch.utils.data import DataLoader

    from lit_rlhf.ppo.stage import collate_prompts

    rows = [{"prompt": r["prompt"]} for r in json.loads((workdir / "prompts.json").read_text())[:prompts]]
    loader = DataLoader(rows * iterations, batch_size=prompts, collate_fn=collate_prompts)
    trainer = L.Trainer(
        accelerator="cpu",
        devices=1,
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=list(callbacks),
    )
    trainer.fit(module, loader)


def run_lit(
    workdir: Path, warmup: int, iterations: int, fused_backward: bool = False, compile_update: bool = False
) -> dict:
    import lightning as L

    class Clock(L.Callback):
        def __init__(self):
            self.clock = IterationClock()

        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            if batch_idx == 0:
                self.clock.start()

        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            self.clock.tick()
            observer.active = False  # peak gradients from the first iteration only
            lengths.append(float(trainer.callback_metrics["rollout/response_length"]))

    L.seed_everything(0, verbose=False)
    module, reward = build_lit_module(workdir, fused_backward=fused_backward, compile_update=compile_update)
    observer = GradObserver(list(module.policy.parameters()) + list(module.critic.parameters()))
    lengths: list[float] = []
    clock = Clock()
    fit_lit(module, workdir, warmup + iterations, [clock])
    return {
        **clock.clock.intervals(warmup),
        "peak_grad_bytes": observer.peak,
        "trainable_bytes": _count_bytes(observer.params),
        "response_tokens": statistics.fmean(lengths),
        "reward_input": "token ids" if reward.reads_tokens_of(module.tokenizer) else "decoded text",
    }


# ---- TRL side (runs inside the TRL virtualenv: no lit_rlhf imports here) -----------------------------
def trl_ppo_args(
    output_dir: Path, prompts: int, minibatches: int, ppo_epochs: int, new_tokens: int, iterations: int, **overrides
):
    """TRL's ``PPOConfig`` for a side-by-side run: ``prompts`` per iteration, lit_rlhf's learning rate and KL
    coefficient, a constant rate without clipping, sampling at temperature 1 up to EOS, on the CPU, and nothing
    logged, saved or generated beyond the training itself. ``overrides`` set further fields."""
    from trl.experimental.ppo import PPOConfig

    return PPOConfig(
        output_dir=str(output_dir),
        per_device_train_batch_size=prompts,
        gradient_accumulation_steps=1,
        num_mini_batches=minibatches,
        num_ppo_epochs=ppo_epochs,
        response_length=new_tokens,
        local_rollout_forward_batch_size=prompts,
        total_episodes=prompts * iterations,
        learning_rate=LR,
        kl_coef=KL_COEF,
        temperature=1.0,
        stop_token="eos",
        missing_eos_penalty=None,
        num_sample_generations=0,
        report_to="none",
        save_strategy="no",
        logging_steps=1,
        use_cpu=True,
        seed=0,
        dataloader_num_workers=0,
        disable_tqdm=True,
        lr_scheduler_type="constant",
        max_grad_norm=None,
        **overrides,
    )


def run_trl(workdir: Path, warmup: int, iterations: int) -> dict:
    import transformers
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer, TrainerCallback
    from trl.experimental.ppo import PPOTrainer

    class Clock(TrainerCallback):
        def __init__(self):
            self.clock, self.eos = IterationClock(), []

        def on_train_begin(self, args, state, control, **kwargs):
            self.clock.start()

        def on_step_end(self, args, state, control, **kwargs):
            self.clock.tick()
            observer.active = False

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "val/num_eos_tokens" in logs:
                self.eos.append(float(logs["val/num_eos_tokens"]))

    transformers.set_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(workdir / "policy")
    policy = AutoModelForCausalLM.from_pretrained(workdir / "policy")
    reference = AutoModelForCausalLM.from_pretrained(workdir / "policy")
    reward = AutoModelForSequenceClassification.from_pretrained(workdir / "reward", num_labels=1)
    critic = AutoModelForSequenceClassification.from_pretrained(workdir / "critic", num_labels=1)
    rows = json.loads((workdir / "prompts.json").read_text())
    dataset = Dataset.from_dict({"input_ids": [r["input_ids"] for r in rows]})
    args = trl_ppo_args(
        workdir / "trl_out", PROMPTS, MINIBATCHES, PPO_EPOCHS, NEW_TOKENS, iterations=warmup + iterations
    )
    trainer = PPOTrainer(
        args=args,
        processing_class=tokenizer,
        model=policy,
        ref_model=reference,
        reward_model=reward,
        value_model=critic,
        train_dataset=dataset,
    )
    observer = GradObserver(trainer.model.parameters())
    clock = Clock()
    trainer.add_callback(clock)
    trainer.train()
    return {
        **clock.clock.intervals(warmup),
        "peak_grad_bytes": observer.peak,
        "trainable_bytes": _count_bytes(observer.params),
        "eos_tokens_per_iter": clock.eos,
        "trl_version": __import__("trl").__version__,
        "transformers_version": transformers.__version__,
    }


def ensure_trl_venv() -> tuple[Path | None, str]:
    """The TRL virtualenv's python, made on first use; or None and why it cannot be had."""
    return ensure_venv(TRL_VENV, TRL_PINS, "trl.experimental.ppo")


def ensure_venv(venv: Path, pins: list[str], module: str) -> tuple[Path | None, str]:
    """The python of a virtualenv at ``venv`` with ``pins`` and lit_rlhf's transformers installed, made on first
    use, once ``module`` imports there; or None and why it cannot be had."""
    python = venv / "bin" / "python"
    check = [str(python), "-c", f"import {module}, transformers; print(transformers.__version__)"]
    if python.exists() and subprocess.run(check, capture_output=True, check=False).returncode == 0:
        return python, "ready"
    from importlib.metadata import version

    pins = pins + [f"transformers=={version('transformers')}"]
    venv.parent.mkdir(parents=True, exist_ok=True)
    steps = [
        [sys.executable, "-m", "venv", "--clear", str(venv)],  # no system site-packages
        [str(python), "-m", "pip", "install", "-q", *pins],
    ]
    print(f"creating {venv} with {' '.join(pins)} ...", flush=True)
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            return None, f"`{' '.join(step)}` failed: {(done.stderr or done.stdout).strip()[-800:]}"
    done = subprocess.run(check, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return None, f"{module} does not import: {done.stderr.strip()[-800:]}"
    return python, "created"


def _child(python, variant: str, workdir: Path, args, script: str = __file__) -> dict:
    """Run ``script --variant variant`` under ``python`` (a fresh process, one thread) and read the JSON it prints
    last."""
    cmd = [
        str(python),
        script,
        "--variant",
        variant,
        "--workdir",
        str(workdir),
        "--warmup",
        str(args.warmup),
        "--iterations",
        str(args.iterations),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{variant} failed:\n{(done.stderr or done.stdout)[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def alternate_children(
    variants: list[str], workdir: Path, args, trl_python, trl_note: str, script: str = __file__
) -> tuple[dict[str, list[dict]], str]:
    """``args.repeats`` fresh processes per variant, the variants alternated so that background load hits them
    alike: ``({variant: [its JSON, ...]}, trl_note)``. ``trl_*`` variants run under ``trl_python`` (skipped when it
    is None); the first that fails stops the TRL side and its error becomes the note. A lit_rlhf failure raises."""
    results: dict[str, list[dict]] = {v: [] for v in variants}
    for _ in range(args.repeats):
        for variant in variants:
            python = trl_python if variant.startswith("trl") else sys.executable
            if python is None:
                continue
            try:
                results[variant].append(_child(python, variant, workdir, args, script=script))
            except RuntimeError as err:
                if not variant.startswith("trl"):
                    raise
                trl_note, trl_python = str(err), None
    return results, trl_note


def _report(results: dict[str, list[dict]], trl_note: str, args) -> None:
    print(
        f"workload: {PROMPTS} prompts x {NEW_TOKENS} new tokens, {PPO_EPOCHS} PPO epochs x {MINIBATCHES} "
        f"minibatches, 1 CPU thread; {args.repeats} repeats x {args.iterations} timed iterations "
        f"(+{args.warmup} warm-up); medians over repeats"
    )
    ran = {v: runs for v, runs in results.items() if runs}
    wall = {v: statistics.median(r["sec_per_iter"] for r in runs) for v, runs in ran.items()}
    cpu = {v: statistics.median(r["cpu_sec_per_iter"] for r in runs) for v, runs in ran.items()}
    print(f"{'variant':20s} {'CPU s/it':>9s} {'wall s/it':>10s} {'CPU s/it of each run':>32s} {'peak grad MiB':>14s}")
    for variant, runs in ran.items():
        per_run = " ".join(f"{r['cpu_sec_per_iter']:.2f}" for r in runs)
        print(
            f"{variant:20s} {cpu[variant]:9.3f} {wall[variant]:10.3f} {per_run:>32s} "
            f"{runs[0]['peak_grad_bytes'] / 2**20:14.2f}"
        )
    if "trl" in ran:
        print(
            f"TRL / lit_rlhf per iteration: {cpu['trl'] / cpu['lit']:.2f}x CPU time, "
            f"{wall['trl'] / wall['lit']:.2f}x wall time"
        )
    else:
        print(f"TRL not run: {trl_note}")
    lit, fused = ran["lit"][0], ran["lit_fused_backward"][0]
    print(
        f"in-backward / standard AdamW: {cpu['lit_fused_backward'] / cpu['lit']:.2f}x CPU time, "
        f"{wall['lit_fused_backward'] / wall['lit']:.2f}x wall time; peak live gradients "
        f"{fused['peak_grad_bytes'] / lit['peak_grad_bytes']:.3f}x ({fused['peak_grad_bytes'] / 2**20:.2f} vs "
        f"{lit['peak_grad_bytes'] / 2**20:.2f} MiB; trainable parameters {lit['trainable_bytes'] / 2**20:.2f} MiB)"
    )
    compiled = ran["lit_compiled"]
    print(
        f"torch.compile'd update / eager: {cpu['lit_compiled'] / cpu['lit']:.2f}x CPU time, "
        f"{wall['lit_compiled'] / wall['lit']:.2f}x wall time; first (compiling) iteration of each run "
        + " ".join(f"{r['first_iter_wall']:.1f}" for r in compiled)
        + " wall s (later runs read inductor's "
        f"cache) against {statistics.median(r['first_iter_wall'] for r in ran['lit']):.1f} eager"
        + (f"; TRL / compiled lit_rlhf: {cpu['trl'] / cpu['lit_compiled']:.2f}x CPU time" if "trl" in ran else "")
    )
    print("lit_rlhf reward model input:", lit["reward_input"])
    print(
        "mean response tokens (lit):",
        round(lit["response_tokens"], 1),
        "| EOS per iteration (trl):",
        ran["trl"][0]["eos_tokens_per_iter"] if "trl" in ran else "n/a",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--skip-trl", action="store_true")
    parser.add_argument("--variant", choices=VARIANTS, help=argparse.SUPPRESS)  # child-process mode
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.variant:
        workdir = Path(args.workdir)
        if args.variant == "trl":
            out = run_trl(workdir, args.warmup, args.iterations)
        else:
            out = run_lit(
                workdir,
                args.warmup,
                args.iterations,
                fused_backward=args.variant == "lit_fused_backward",
                compile_update=args.variant == "lit_compiled",
            )
        print(json.dumps({"variant": args.variant, **out}))
        return
    trl_python, trl_note = (None, "--skip-trl") if args.skip_trl else ensure_trl_venv()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        write_workload(workdir)
        results, trl_note = alternate_children(list(VARIANTS), workdir, args, trl_python, trl_note)
    _report(results, trl_note, args)


if __name__ == "__main__":
    main()
