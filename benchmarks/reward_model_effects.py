"""Measured effects of the reward-model techniques on the gym (numbers for docs/reward_model.md).

(1) length balancing: with length-biased annotators, RMs trained on balanced vs unbalanced
    pairs -> held-out score/length correlation and accuracy vs labels and vs the gold judge;
(2) the score prior: score mean/std on the training batches across training with and
    without it (PNG plot);
(3) held-out accuracy of the RM vs the annotators' majority labels and vs the gold judge,
    next to how often the majority itself agrees with the gold judge.

    python benchmarks/reward_model_effects.py --out docs/reward_model_effects
"""

from __future__ import annotations

import argparse
import json
import time
from functools import partial
from pathlib import Path

import lightning as L
import torch

from lit_rlhf.gym import AlignmentGym
from lit_rlhf.gym.comparisons import gym_preference_rows
from lit_rlhf.reward.data import PreferenceDataModule
from lit_rlhf.reward.length_balance import LengthBalancer
from lit_rlhf.reward.metrics import evaluate_pairs
from lit_rlhf.reward.model import build_reward_model
from lit_rlhf.reward.module import RewardModelModule
from lit_rlhf.systems.optimizers import warmup_cosine


class ScoreHistory(L.Callback):
    """Score mean/std of every training batch (both sides of each pair)."""

    def __init__(self):
        self.steps: list[dict] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        m = trainer.callback_metrics
        self.steps.append(
            {
                "step": trainer.global_step,
                "mean": float(m["train/reward/score_mean"]),
                "std": float(m["train/reward/score_std"]),
                "loss": float(m["train/loss"]),
            }
        )


def gym_rows(args, split: str, seed: int) -> list[dict]:
    gym = AlignmentGym(seed=0)
    return gym_preference_rows(
        gym, split, pairs_per_prompt=args.pairs_per_prompt, n_annotators=3, length_bias=args.length_bias, seed=seed
    )


def train_rm(args, train, val, *, balance: bool, prior_coef: float, epochs: int, seed: int, lr: float):
    L.seed_everything(seed, verbose=False)
    model, tokenizer = build_reward_model(seed=seed)
    balancer = LengthBalancer(seed=seed) if balance else None
    dm = PreferenceDataModule(tokenizer, train, val, batch_size=32, max_length=96, length_balance=balancer, seed=seed)
    module = RewardModelModule(
        model,
        tokenizer,
        optimizer=partial(torch.optim.AdamW, lr=lr, betas=(0.9, 0.98)),
        scheduler=partial(warmup_cosine, warmup_ratio=0.05, min_ratio=0.1),
        weight_decay=0.01,
        prior_coef=prior_coef,
        max_length=96,
    )
    history = ScoreHistory()
    trainer = L.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[history],
        num_sanity_val_steps=0,
        limit_val_batches=0,
    )
    start = time.perf_counter()
    trainer.fit(module, datamodule=dm)
    return module, tokenizer, history.steps, len(dm.train_set), time.perf_counter() - start


def length_balancing(args, test_rows, judge) -> dict:
    results = {}
    for seed in args.seeds:
        train = gym_rows(args, "train", seed)
        for balance in (False, True):
            module, tokenizer, _, n_train, secs = train_rm(
                args, train, None, balance=balance, prior_coef=0.01, epochs=args.epochs, seed=seed, lr=args.lr
            )
            stats = evaluate_pairs(module.scorer, test_rows, judge, tokenizer)
            stats.update(train_pairs=n_train, seconds=round(secs, 1))
            results[f"{'balanced' if balance else 'unbalanced'}/seed{seed}"] = stats
            print(
                f"seed {seed} {'balanced  ' if balance else 'unbalanced'} "
                + json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in stats.items()}),
                flush=True,
            )
    return results


def score_prior(args, test_rows) -> dict:
    train = gym_rows(args, "train", args.seeds[0])
    curves = {}
    for coef in (0.0, args.prior_coef):
        module, tokenizer, steps, _, _ = train_rm(
            args,
            train,
            None,
            balance=True,
            prior_coef=coef,
            epochs=args.drift_epochs,
            seed=args.seeds[0],
            lr=args.drift_lr,
        )
        heldout = evaluate_pairs(module.scorer, test_rows, None, tokenizer)
        curves[str(coef)] = {"steps": steps, "heldout": heldout}
        last = steps[-max(1, len(steps) // 10) :]
        print(
            f"prior_coef={coef}: final train score mean {sum(s['mean'] for s in last) / len(last):+.3f} "
            f"std {sum(s['std'] for s in last) / len(last):.3f}; held-out mean {heldout['score_mean']:+.3f} "
            f"std {heldout['score_std']:.3f} accuracy {heldout['accuracy']:.3f}",
            flush=True,
        )
    return curves


def plot_drift(curves: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def rolling(values: list[float], window: int = 10) -> list[float]:
        # Batches are grouped by length, so single-batch statistics are noisy; show a running mean.
        return [
            sum(values[max(0, i - window + 1) : i + 1]) / len(values[max(0, i - window + 1) : i + 1])
            for i in range(len(values))
        ]

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    for coef, curve in curves.items():
        steps = [s["step"] for s in curve["steps"]]
        label = "no prior" if float(coef) == 0 else f"prior lambda={coef}"
        axes[0].plot(steps, rolling([s["mean"] for s in curve["steps"]]), label=label)
        axes[1].plot(steps, rolling([s["std"] for s in curve["steps"]]), label=label)
    axes[0].set_title("score mean (training batches, 10-step running mean)")
    axes[1].set_title("score std (training batches, 10-step running mean)")
    for ax in axes:
        ax.set_xlabel("step")
        ax.axhline(0, color="grey", lw=0.5)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs/reward_model_effects")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--length-bias", type=float, default=0.5)
    parser.add_argument("--pairs-per-prompt", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--prior-coef", type=float, default=0.01)
    parser.add_argument("--drift-epochs", type=int, default=12)
    parser.add_argument("--drift-lr", type=float, default=3e-3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--plot-only", action="store_true", help="redraw the PNG from an existing results.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.plot_only:
        plot_drift(json.loads((out / "results.json").read_text())["score_prior"], out / "score_drift.png")
        return
    gym = AlignmentGym(seed=0)
    test_rows = gym_preference_rows(gym, "test", pairs_per_prompt=4, length_bias=args.length_bias, seed=123)
    print(f"held-out pairs: {len(test_rows)} ({test_rows.report.summary()})", flush=True)
    results = {"args": vars(args), "length_balancing": length_balancing(args, test_rows, gym.judge)}
    curves = score_prior(args, test_rows)
    plot_drift(curves, out / "score_drift.png")
    results["score_prior"] = curves
    (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {out / 'results.json'} and {out / 'score_drift.png'}")


if __name__ == "__main__":
    main()
