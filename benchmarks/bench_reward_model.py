"""Reward-model training speed: lit_rlhf's RewardModelModule vs TRL's RewardTrainer, same model, data and batch.

Both train the embedded tiny Llama reward model (identical initial weights) on the same
pre-tokenised gym preference pairs, batch size B pairs (2B sequences in one forward for
both), AdamW at the same learning rate, gradient clipping at 1.0, for a fixed number of
steps. Timing starts after ``--warmup`` steps and ends with training; the script prints
pairs/second for each and their ratio. Both pad each batch to its longest sequence; lit_rlhf
additionally batches pairs of similar length together (``group_by_length``, on by default),
and is also timed with it off to show where the difference comes from. Runs alternate (ours, TRL, ours, TRL, ...)
and the median is reported, because the CPU may be shared.

    python benchmarks/bench_reward_model.py --steps 40 --batch-size 32 --repeats 3

TRL is optional (``pip install trl``); without it the script says why and prints our number only.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from functools import partial

import lightning as L
import torch

from lit_rlhf.gym import AlignmentGym
from lit_rlhf.gym.comparisons import gym_preference_rows
from lit_rlhf.reward.data import PreferenceDataModule
from lit_rlhf.reward.model import build_reward_model
from lit_rlhf.reward.module import RewardModelModule


class LightningTimer(L.Callback):
    def __init__(self, warmup: int):
        self.warmup, self.start, self.end = warmup, None, None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.warmup and self.start is None:
            self.start = time.perf_counter()

    def on_train_end(self, trainer, pl_module):
        self.end = time.perf_counter()


def run_ours(args, model_state, datamodule, group_by_length: bool = True) -> float:
    model, tokenizer = build_reward_model(seed=0)
    model.load_state_dict(model_state)
    module = RewardModelModule(
        model,
        tokenizer,
        optimizer=partial(torch.optim.AdamW, lr=args.lr),
        prior_coef=args.prior_coef,
        max_length=args.max_length,
        fused_optimizer="auto",
    )
    timer = LightningTimer(args.warmup)
    datamodule.group_by_length = group_by_length
    trainer = L.Trainer(
        max_steps=args.steps,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        gradient_clip_val=1.0,
        callbacks=[timer],
    )
    trainer.fit(module, datamodule=datamodule)
    return (args.steps - args.warmup) * args.batch_size / (timer.end - timer.start)


def run_trl(args, model_state, datamodule) -> float:
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import RewardConfig, RewardTrainer

    class HFTimer(TrainerCallback):
        start = end = None

        def on_step_begin(self, targs, state, control, **kw):
            if state.global_step == args.warmup and self.start is None:
                self.start = time.perf_counter()

        def on_train_end(self, targs, state, control, **kw):
            self.end = time.perf_counter()

    model, tokenizer = build_reward_model(seed=0)
    model.load_state_dict(model_state)
    items = datamodule.train_set.items
    dataset = Dataset.from_dict(
        {"chosen_ids": [i["chosen_ids"] for i in items], "rejected_ids": [i["rejected_ids"] for i in items]}
    )
    timer = HFTimer()
    with tempfile.TemporaryDirectory() as out:
        config = RewardConfig(
            output_dir=out,
            per_device_train_batch_size=args.batch_size,
            max_steps=args.steps,
            learning_rate=args.lr,
            lr_scheduler_type="constant",
            warmup_steps=0,
            weight_decay=0.0,
            max_grad_norm=1.0,
            logging_steps=args.steps,
            report_to="none",
            save_strategy="no",
            eval_strategy="no",
            use_cpu=True,
            dataloader_num_workers=0,
            seed=0,
            center_rewards_coefficient=args.prior_coef,
            max_length=args.max_length,
            optim="adamw_torch_fused",
            disable_tqdm=True,
        )
        trainer = RewardTrainer(
            model=model, args=config, train_dataset=dataset, processing_class=tokenizer, callbacks=[timer]
        )
        trainer.train()
    return (args.steps - args.warmup) * args.batch_size / (timer.end - timer.start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=96)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--prior-coef", type=float, default=0.01)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    gym = AlignmentGym(seed=0)
    rows = gym_preference_rows(gym, "train", pairs_per_prompt=2, length_bias=0.5)
    model, tokenizer = build_reward_model(seed=0)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    datamodule = PreferenceDataModule(tokenizer, rows, batch_size=args.batch_size, max_length=args.max_length)
    datamodule.setup("fit")
    print(
        f"workload: {len(rows)} gym pairs, batch {args.batch_size} pairs, {args.steps} steps "
        f"({args.warmup} warm-up), tiny Llama reward model "
        f"({sum(p.numel() for p in model.parameters()) / 1e6:.2f}M params), {args.threads} CPU thread(s)"
    )
    try:
        import trl

        trl_error = None
        print(f"TRL {trl.__version__}")
    except ImportError as err:
        trl_error = f"TRL is not installed ({err}); pip install trl to compare"
    ours, plain, theirs = [], [], []
    for _ in range(args.repeats):
        ours.append(run_ours(args, state, datamodule))
        print(f"  lit_rlhf RewardModelModule:                   {ours[-1]:8.1f} pairs/s", flush=True)
        plain.append(run_ours(args, state, datamodule, group_by_length=False))
        print(f"  lit_rlhf RewardModelModule, group_by_length=0: {plain[-1]:8.1f} pairs/s", flush=True)
        if trl_error is None:
            try:
                theirs.append(run_trl(args, state, datamodule))
                print(f"  TRL RewardTrainer:                            {theirs[-1]:8.1f} pairs/s", flush=True)
            except Exception as err:  # noqa: BLE001 -- report exactly why TRL could not run, keep our number
                trl_error = f"TRL RewardTrainer failed: {type(err).__name__}: {err}"
    padding = padding_share(datamodule, True), padding_share(datamodule, False)
    print(f"padding share of the batches: {padding[0]:.0%} grouped by length, {padding[1]:.0%} shuffled (as TRL)")
    print(
        f"lit_rlhf: {statistics.median(ours):.1f} pairs/s (median of {len(ours)}); "
        f"without length grouping {statistics.median(plain):.1f} pairs/s"
    )
    if trl_error:
        print(trl_error)
        return
    print(f"TRL:      {statistics.median(theirs):.1f} pairs/s (median of {len(theirs)})")
    print(
        f"ratio lit_rlhf / TRL: {statistics.median(ours) / statistics.median(theirs):.2f}x "
        f"(without length grouping: {statistics.median(plain) / statistics.median(theirs):.2f}x)"
    )


def padding_share(datamodule, group_by_length: bool) -> float:
    datamodule.group_by_length = group_by_length
    masks = [batch["attention_mask"] for batch in datamodule.train_dataloader()]
    return 1.0 - sum(m.sum().item() for m in masks) / sum(m.numel() for m in masks)


if __name__ == "__main__":
    main()
