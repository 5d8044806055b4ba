"""Trains PPOModule on several processes and writes what each rank saw (tests/systems/test_ddp_ppo.py,
tests/systems/test_fsdp_gpu.py).

    python tests/systems/ppo_distributed_script.py OUT_DIR                                  # DDP, 2 CPU ranks, gloo
    python tests/systems/ppo_distributed_script.py OUT_DIR --strategy fsdp --accelerator gpu --devices 2

Lightning's launcher re-executes this script once per extra rank (same arguments), so every
rank runs the same code; each writes ``rank<k>.json`` (its local raw rewards, the logged,
rank-synchronised metrics, the KL coefficient and normaliser state) and ``rank<k>.pt`` (the
policy's parameters after training).
"""

from __future__ import annotations

import argparse
import functools
import json
from pathlib import Path

import lightning as L
import torch
from torch.distributed.fsdp import FSDPModule
from torch.utils.data import DataLoader

from lit_rlhf.gym import AlignmentGym
from lit_rlhf.models import build_policy
from lit_rlhf.models.adapters import apply_memory_options
from lit_rlhf.ppo.config import PPOConfig
from lit_rlhf.ppo.module import PPOModule
from lit_rlhf.ppo.stage import collate_prompts
from lit_rlhf.systems.strategies import ddp_strategy, fsdp2_strategy, fsdp_strategy

TINY = {"hidden_size": 32, "num_layers": 1, "num_heads": 2, "intermediate_size": 64}
PROMPTS_PER_RANK_STEP = 4


def toy_reward(prompts: list[str], responses: list[str]) -> list[float]:
    """Deterministic and varied: characters per word, a length cost, a bonus for each prompt word reused."""
    scores = []
    for prompt, response in zip(prompts, responses):
        words = response.split()
        chars = sum(len(w) for w in words) / max(1, len(words))
        scores.append(chars - 0.2 * len(words) + 0.5 * len(set(words) & set(prompt.split())))
    return scores


class ShardedPPOModule(PPOModule):
    """FSDP2: Lightning lets the module shard its own models."""

    def configure_model(self):
        self.trainer.strategy.shard_models(self.policy, self.critic, self.reference)


class RankRecorder(L.Callback):
    """After every training step: this rank's raw rewards and the metrics as logged (synchronised)."""

    def __init__(self):
        self.rows = []

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        metrics = trainer.callback_metrics
        self.rows.append(
            {
                "prompts": module.last_rollout["prompts"],
                "raw": module.last_rollout["raw"],
                "logged_raw": float(metrics["reward/raw"]),
                "logged_kl": float(metrics["objective/kl"]),
                "kl_coef_after": module.kl_controller.value,
            }
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out_dir")
    parser.add_argument("--strategy", choices=("ddp", "fsdp", "fsdp2"), default="ddp")
    parser.add_argument("--iterations", type=int, default=2)
    parser.add_argument("--accelerator", choices=("cpu", "gpu"), default="cpu")
    parser.add_argument("--devices", type=int, default=2)
    parser.add_argument("--fused-backward", action="store_true", help="AdamW stepped inside backward")
    parser.add_argument("--lora", action="store_true", help="LoRA adapters on the policy (the base stays frozen)")
    parser.add_argument("--estimator", default="gae", help="PPOConfig.advantage_estimator (grpo: 2 answers each)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    L.seed_everything(0)
    gym = AlignmentGym(seed=0)
    prompts = [p.text for p in gym.prompts("train")[::7]][: args.devices * PROMPTS_PER_RANK_STEP * args.iterations]
    model, tokenizer = build_policy("embedded", seed=0, tiny=TINY)
    if args.lora:
        model = apply_memory_options(model, lora={"r": 4, "alpha": 8, "dropout": 0.0}, seed=0)
    config = PPOConfig(
        max_new_tokens=6,
        ppo_epochs=2,
        num_minibatches=2,
        reference_baseline=False,
        reward_normalization="running",
        adaptive_kl=True,
        kl_target=0.01,
        kl_horizon=50,
        fused_backward=args.fused_backward,
        max_grad_norm=None,
        advantage_estimator=args.estimator,
        samples_per_prompt=2 if args.estimator in ("grpo", "rloo") else 1,
    )  # unclipped in every run, so runs compare across strategies
    module = (ShardedPPOModule if args.strategy == "fsdp2" else PPOModule)(
        model, tokenizer, toy_reward, config, optimizer=functools.partial(torch.optim.AdamW, lr=1e-3), param_groups={}
    )
    loader = DataLoader([{"prompt": p} for p in prompts], batch_size=PROMPTS_PER_RANK_STEP, collate_fn=collate_prompts)
    if args.strategy == "ddp":
        strategy = ddp_strategy(process_group_backend="gloo" if args.accelerator == "cpu" else None)
    elif args.strategy == "fsdp":  # Lightning runs FSDP1 on GPUs only
        strategy = fsdp_strategy(mixed_precision="bf16")
    else:
        strategy = fsdp2_strategy(
            mixed_precision="bf16" if args.accelerator == "gpu" else None,
            process_group_backend="gloo" if args.accelerator == "cpu" else None,
        )
    recorder = RankRecorder()
    trainer = L.Trainer(
        accelerator=args.accelerator,
        devices=args.devices,
        strategy=strategy,
        max_epochs=1,
        limit_train_batches=args.iterations,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[recorder],
    )
    trainer.fit(module, loader)
    out, rank = Path(args.out_dir), trainer.global_rank
    out.mkdir(parents=True, exist_ok=True)
    state = {
        k: v.detach().clone()
        for k, v in trainer.strategy.lightning_module_state_dict().items()
        if k.startswith("policy.")
    }
    state = {k: v.full_tensor() if hasattr(v, "full_tensor") else v for k, v in state.items()}  # FSDP2 shards
    if rank == 0 or args.strategy != "fsdp":  # FSDP1's full state dict is gathered on rank 0 only
        torch.save(state, out / f"rank{rank}.pt")
    payload = {
        "rank": rank,
        "world_size": trainer.world_size,
        "steps": recorder.rows,
        "fsdp2_units": sum(isinstance(m, FSDPModule) for m in module.modules()),
        "normalizer": module.normalizer.state_dict(),
        "kl_coef": module.kl_controller.value,
    }
    (out / f"rank{rank}.json").write_text(json.dumps(payload, indent=1))
    # Tear the process group down before the interpreter exits: left to process exit, gloo's
    # threads are sometimes destroyed while still joinable and the process aborts (SIGABRT).
    if torch.distributed.is_initialized():
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
