"""PPO on 2 CPU ranks (DDP, gloo): rewards and statistics reduced across ranks, ranks stay in lockstep.

The training script runs in a subprocess (Lightning's launcher re-executes it for rank 1);
each rank writes its local raw rewards, the logged metrics and its final parameters. The
last test runs the same checks under FSDP2 (``fully_shard`` via Lightning's
``ModelParallelStrategy``) in float32; bf16 and FSDP1 need a GPU (``test_fsdp_gpu.py``).
"""

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lit_rlhf.core.kl_controllers import build_kl_controller
from lit_rlhf.models import build_policy

SCRIPT = Path(__file__).with_name("ppo_distributed_script.py")
ITERATIONS = 2


def run_two_ranks(out: Path, *extra: str) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, str(SCRIPT), str(out), "--iterations", str(ITERATIONS), *extra],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp_ppo")
    run_two_ranks(out)
    return [json.loads((out / f"rank{k}.json").read_text()) for k in (0, 1)], out


@pytest.mark.slow
def test_ranks_train_on_different_prompts(ranks):
    (r0, r1), _ = ranks
    assert r0["world_size"] == r1["world_size"] == 2
    assert r0["fsdp2_units"] == 0
    assert len(r0["steps"]) == len(r1["steps"]) == ITERATIONS
    for s0, s1 in zip(r0["steps"], r1["steps"]):
        assert not set(s0["prompts"]) & set(s1["prompts"])  # the distributed sampler split the prompts


@pytest.mark.slow
def test_logged_reward_is_the_mean_over_both_ranks(ranks):
    (r0, r1), _ = ranks
    # The ranks' own means differ, so matching the mean of both is not a coincidence.
    assert any(
        statistics.fmean(s0["raw"]) != pytest.approx(statistics.fmean(s1["raw"]), abs=1e-3)
        for s0, s1 in zip(r0["steps"], r1["steps"])
    )
    for s0, s1 in zip(r0["steps"], r1["steps"]):
        both = s0["raw"] + s1["raw"]
        assert s0["logged_raw"] == pytest.approx(statistics.fmean(both), abs=1e-5)
        assert s1["logged_raw"] == pytest.approx(s0["logged_raw"], abs=1e-6)
        assert s0["logged_kl"] == pytest.approx(s1["logged_kl"], abs=1e-7)


@pytest.mark.slow
def test_running_normaliser_holds_the_statistics_of_all_ranks(ranks):
    (r0, r1), _ = ranks
    everything = [x for rank in (r0, r1) for step in rank["steps"] for x in step["raw"]]
    assert r0["normalizer"] == r1["normalizer"]
    state = r0["normalizer"]
    assert state["count"] == len(everything) == 2 * 4 * ITERATIONS
    assert state["mean"] == pytest.approx(statistics.fmean(everything), abs=1e-9)
    assert state["m2"] / (state["count"] - 1) == pytest.approx(statistics.variance(everything), rel=1e-6, abs=1e-9)


@pytest.mark.slow
def test_kl_controller_is_identical_and_fed_the_global_kl(ranks):
    (r0, r1), _ = ranks
    assert r0["kl_coef"] == r1["kl_coef"]
    # Replay the adaptive controller with the logged (rank-averaged) KL and both ranks' batch sizes.
    replay = build_kl_controller(0.05, True, 0.01, 50)
    for s0, s1 in zip(r0["steps"], r1["steps"]):
        replay.update(s0["logged_kl"], len(s0["raw"]) + len(s1["raw"]))
        assert s0["kl_coef_after"] == s1["kl_coef_after"] == pytest.approx(replay.value, rel=1e-6)
    assert r0["kl_coef"] != 0.05  # it moved, so the comparison above means something


@pytest.mark.slow
def test_policy_parameters_are_identical_on_both_ranks_and_trained(ranks):
    _, out = ranks
    p0, p1 = (torch.load(out / f"rank{k}.pt", weights_only=True) for k in (0, 1))
    assert p0.keys() == p1.keys() and p0
    for name in p0:
        assert torch.equal(p0[name], p1[name]), name
    initial, _ = build_policy(
        "embedded", seed=0, tiny={"hidden_size": 32, "num_layers": 1, "num_heads": 2, "intermediate_size": 64}
    )
    moved = [n for n, p in initial.named_parameters() if not torch.equal(p, p0[f"policy.{n}"])]
    assert len(moved) == len(list(initial.parameters()))


@pytest.mark.slow
def test_fsdp2_with_the_in_backward_optimizer_matches_ddp(tmp_path, ranks):
    """FSDP2 shards every block; AdamW stepped inside backward on the reduce-scattered shards gives the DDP result."""
    run_two_ranks(tmp_path, "--strategy", "fsdp2", "--fused-backward")
    r0, r1 = (json.loads((tmp_path / f"rank{k}.json").read_text()) for k in (0, 1))
    assert len(r0["steps"]) == len(r1["steps"]) == ITERATIONS
    assert r0["fsdp2_units"] == 3 * 2  # policy, critic, reference: one decoder layer each, plus each root
    for s0, s1 in zip(r0["steps"], r1["steps"]):
        assert not set(s0["prompts"]) & set(s1["prompts"])
        assert s0["logged_raw"] == pytest.approx(statistics.fmean(s0["raw"] + s1["raw"]), abs=1e-5)
        assert s0["kl_coef_after"] == s1["kl_coef_after"]
    everything = [x for rank in (r0, r1) for step in rank["steps"] for x in step["raw"]]
    assert r0["normalizer"] == r1["normalizer"] and r0["normalizer"]["count"] == len(everything)
    assert r0["normalizer"]["mean"] == pytest.approx(statistics.fmean(everything), abs=1e-9)
    p0, p1 = (torch.load(tmp_path / f"rank{k}.pt", weights_only=True) for k in (0, 1))
    ddp = torch.load(ranks[1] / "rank0.pt", weights_only=True)
    assert p0.keys() == p1.keys() == ddp.keys() and p0
    for name in p0:
        assert torch.equal(p0[name], p1[name]), name
        torch.testing.assert_close(p0[name], ddp[name], rtol=1e-4, atol=1e-5, msg=name)


@pytest.mark.slow
def test_lora_with_a_critic_free_estimator_under_ddp(tmp_path):
    """DDP over a LoRA policy with GRPO (no critic): the adapters train alike on both ranks, the base stays put."""
    run_two_ranks(tmp_path, "--lora", "--estimator", "grpo")
    r0, r1 = (json.loads((tmp_path / f"rank{k}.json").read_text()) for k in (0, 1))
    for s0, s1 in zip(r0["steps"], r1["steps"]):
        assert not set(s0["prompts"]) & set(s1["prompts"])
        assert all(s0["prompts"].count(p) == 2 for p in s0["prompts"])  # a group of 2 answers per prompt
        assert s0["logged_raw"] == pytest.approx(statistics.fmean(s0["raw"] + s1["raw"]), abs=1e-5)
    p0, p1 = (torch.load(tmp_path / f"rank{k}.pt", weights_only=True) for k in (0, 1))
    assert p0.keys() == p1.keys()
    for name in p0:
        assert torch.equal(p0[name], p1[name]), name
    initial, _ = build_policy(
        "embedded", seed=0, tiny={"hidden_size": 32, "num_layers": 1, "num_heads": 2, "intermediate_size": 64}
    )
    base = dict(initial.named_parameters())
    adapters = [n for n in p0 if "lora_B" in n]
    assert adapters and all(p0[n].abs().sum() > 0 for n in adapters)  # B starts at zero: these trained
    frozen = {n: n.removeprefix("policy.base_model.model.").replace(".base_layer", "") for n in p0 if "lora_" not in n}
    assert frozen and all(torch.equal(p0[n], base[plain]) for n, plain in frozen.items())
