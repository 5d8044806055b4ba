"""PPO under FSDP with bf16 compute on one GPU, and on two when the machine has them. Skipped without CUDA."""

import functools
import json
import math
import os
import statistics
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="FSDP with bf16 needs a CUDA GPU; none is available"),
]

SCRIPT = Path(__file__).with_name("ppo_distributed_script.py")
TINY = {"hidden_size": 64, "num_layers": 2, "num_heads": 4, "intermediate_size": 128}


def test_fsdp_bf16_ppo_on_one_gpu():
    from torch.distributed.fsdp import FullyShardedDataParallel

    from lit_rlhf.gym import AlignmentGym
    from lit_rlhf.models import build_policy
    from lit_rlhf.ppo.config import PPOConfig
    from lit_rlhf.ppo.module import PPOModule
    from lit_rlhf.ppo.stage import collate_prompts
    from lit_rlhf.systems.strategies import fsdp_strategy

    if not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bf16 support")
    L.seed_everything(0)
    gym = AlignmentGym(seed=0)
    prompts = [p.text for p in gym.prompts("train")[:8]]
    model, tokenizer = build_policy("embedded", seed=0, tiny=TINY)
    initial = {k: v.detach().clone() for k, v in model.state_dict().items()}
    config = PPOConfig(max_new_tokens=8, ppo_epochs=2, reference_baseline=False, reward_normalization="running")
    module = PPOModule(
        model,
        tokenizer,
        lambda ps, rs: [len(set(r.split())) / 4 for r in rs],
        config,
        optimizer=functools.partial(torch.optim.AdamW, lr=1e-3),
        param_groups={},
    )
    trainer = L.Trainer(
        accelerator="gpu",
        devices=1,
        strategy=fsdp_strategy(mixed_precision="bf16"),
        max_epochs=1,
        limit_train_batches=2,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(module, DataLoader([{"prompt": p} for p in prompts], batch_size=4, collate_fn=collate_prompts))

    units = [m for m in trainer.strategy.model.modules() if isinstance(m, FullyShardedDataParallel)]
    blocks = [u for u in units if type(u.module).__name__ == "LlamaDecoderLayer"]
    assert len(blocks) == 3 * TINY["num_layers"]  # policy, critic and reference, one unit per block
    assert all(u.mixed_precision.param_dtype == torch.bfloat16 for u in units)
    for key in ("reward/raw", "policy/loss", "critic/loss", "objective/kl"):
        assert math.isfinite(float(trainer.callback_metrics[key])), key
    state = trainer.strategy.lightning_module_state_dict()
    moved = [k for k, v in initial.items() if not torch.equal(v, state[f"policy.{k}"].cpu())]
    assert len(moved) == len(initial), sorted(set(initial) - set(moved))


@pytest.mark.parametrize("strategy,devices", [("fsdp", 2), ("fsdp2", 1), ("fsdp2", 2)])
def test_sharded_bf16_ppo_reduces_across_ranks(tmp_path, strategy, devices):
    if torch.cuda.device_count() < devices:
        pytest.skip(f"needs {devices} GPUs, found {torch.cuda.device_count()}")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            str(tmp_path),
            "--strategy",
            strategy,
            "--accelerator",
            "gpu",
            "--devices",
            str(devices),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{k}.json").read_text()) for k in range(devices)]
    for steps in zip(*(r["steps"] for r in ranks)):
        everything = [x for step in steps for x in step["raw"]]
        assert steps[0]["logged_raw"] == pytest.approx(statistics.fmean(everything), abs=1e-4)
        assert len({step["kl_coef_after"] for step in steps}) == 1
    assert all(r["normalizer"] == ranks[0]["normalizer"] for r in ranks)
    assert ranks[0]["normalizer"]["count"] == 8 * devices
    if strategy == "fsdp2":
        assert ranks[0]["fsdp2_units"] == 3 * 2
    state = torch.load(tmp_path / "rank0.pt", weights_only=True)
    assert state and all(torch.isfinite(v).all() for v in state.values())
