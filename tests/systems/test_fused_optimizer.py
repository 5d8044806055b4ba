import copy
import io

import pytest
import torch
from torch import nn

from lit_rlhf.systems.adamw import actor_critic_param_groups, build_adamw
from lit_rlhf.systems.fused_optimizer import FusedBackwardAdamW, check_fused_backward_compatible


def _model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 8), nn.LayerNorm(8), nn.Tanh(), nn.Linear(8, 3))


def _loss(model: nn.Module, step: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(100 + step)
    x, y = torch.randn(5, 6, generator=g), torch.randn(5, 3, generator=g)
    return (model(x) - y).square().mean()


def _train(model, opt, steps, scheduler=None, start=0):
    for step in range(start, start + steps):
        opt.zero_grad()
        _loss(model, step).backward()
        opt.step()
        if scheduler is not None:
            scheduler.step()


def _assert_same_params(a: nn.Module, b: nn.Module):
    for (name, pa), pb in zip(a.named_parameters(), b.parameters()):
        torch.testing.assert_close(pa, pb, msg=lambda m, name=name: f"{name}: {m}")


def _warmup(opt):
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 3))


@pytest.mark.parametrize("fused", [True, False])
def test_matches_standard_adamw_with_schedule(fused):
    reference, model = _model(), _model()
    initial = copy.deepcopy(model)
    standard = build_adamw(reference.named_parameters(), lr=0.05, weight_decay=0.1, fused=fused)
    in_backward = FusedBackwardAdamW(model.named_parameters(), lr=0.05, weight_decay=0.1, fused=fused)
    _train(reference, standard, 6, _warmup(standard))
    _train(model, in_backward, 6, _warmup(in_backward))
    _assert_same_params(reference, model)
    assert all(not torch.equal(p, q) for p, q in zip(model.parameters(), initial.parameters()))


def test_updates_happen_in_backward_and_free_gradients():
    model = _model()
    before = [p.detach().clone() for p in model.parameters()]
    opt = FusedBackwardAdamW(model.parameters(), lr=0.1)
    _loss(model, 0).backward()
    assert opt.hooks_active
    assert all(p.grad is None for p in model.parameters())
    assert all(not torch.equal(p, b) for p, b in zip(model.parameters(), before))


def test_removed_hooks_leave_gradients_and_step_applies_them():
    reference, model = _model(), _model()
    standard = build_adamw(reference.parameters(), lr=0.05, weight_decay=0.1)
    opt = FusedBackwardAdamW(model.parameters(), lr=0.05, weight_decay=0.1)
    _train(reference, standard, 2)
    _train(model, opt, 2)
    opt.remove_hooks()
    assert not opt.hooks_active
    snapshot = [p.detach().clone() for p in model.parameters()]
    _loss(model, 2).backward()
    assert all(p.grad is not None for p in model.parameters())
    assert all(torch.equal(p, s) for p, s in zip(model.parameters(), snapshot))
    opt.step()
    opt.zero_grad()
    _train(reference, standard, 1, start=2)
    _assert_same_params(reference, model)


def test_state_dict_round_trip_continues_exactly():
    model = _model()
    opt = FusedBackwardAdamW(model.parameters(), lr=0.05, weight_decay=0.1)
    scheduler = _warmup(opt)
    _train(model, opt, 2, scheduler)
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "sched": scheduler.state_dict()}, buffer)
    _train(model, opt, 3, scheduler, start=2)

    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    resumed = _model(seed=1)
    resumed.load_state_dict(saved["model"])
    resumed_opt = FusedBackwardAdamW(resumed.parameters(), lr=99.0, weight_decay=0.1)
    resumed_sched = _warmup(resumed_opt)  # built before loading, as Lightning and most loops do
    resumed_opt.load_state_dict(saved["opt"])
    resumed_sched.load_state_dict(saved["sched"])
    _train(resumed, resumed_opt, 3, resumed_sched, start=2)
    for p, q in zip(model.parameters(), resumed.parameters()):
        assert torch.equal(p, q)


def test_load_state_dict_rejects_other_parameters():
    opt = FusedBackwardAdamW(_model().parameters(), lr=0.1)
    other = FusedBackwardAdamW(nn.Linear(2, 2).parameters(), lr=0.1)
    with pytest.raises(ValueError, match="different parameters"):
        opt.load_state_dict(other.state_dict())


def test_second_backward_before_step_is_refused():
    model = _model()
    FusedBackwardAdamW(model.parameters(), lr=0.1)
    _loss(model, 0).backward()
    with pytest.raises(RuntimeError, match="gradient accumulation"):
        _loss(model, 1).backward()


@pytest.mark.parametrize(
    "settings,match",
    [
        ({"gradient_clip_val": 1.0}, "clipping"),
        ({"accumulate_grad_batches": 4}, "accumulation"),
        ({"precision": "16-mixed"}, "GradScaler"),
        ({"strategy": "ddp"}, "synchronises"),
        ({"strategy": "fsdp"}, "synchronises"),
    ],
)
def test_incompatible_settings_are_refused(settings, match):
    with pytest.raises(ValueError, match=match):
        check_fused_backward_compatible(**settings)


def test_compatible_settings_pass():
    check_fused_backward_compatible(
        gradient_clip_val=None, accumulate_grad_batches=1, precision="bf16-mixed", strategy="auto"
    )
    check_fused_backward_compatible(gradient_clip_val=0.0, precision="32-true")


class _ValueHead(nn.Module):
    def __init__(self, trunk: nn.Module):
        super().__init__()
        self.trunk, self.head = trunk, nn.Linear(3, 1)

    def forward(self, x):
        return self.head(self.trunk(x))


def test_actor_critic_one_backward_matches_standard():
    def build():
        policy = _model()
        return policy, _ValueHead(policy)  # the critic shares the policy's trunk

    def run(make_opt):
        policy, critic = build()
        opt = make_opt(actor_critic_param_groups(policy, critic, {"policy": {"lr": 0.01}, "critic": {"lr": 0.1}}))
        for step in range(3):
            x = torch.randn(4, 6, generator=torch.Generator().manual_seed(step))
            loss = policy(x).square().mean() + (critic(x) - 1.0).square().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        return policy, critic, opt

    p_std, c_std, opt_std = run(lambda g: build_adamw(g, lr=1.0, weight_decay=0.01))
    p_fused, c_fused, opt_fused = run(lambda g: FusedBackwardAdamW(g, lr=1.0, weight_decay=0.01))
    _assert_same_params(p_std, p_fused)
    _assert_same_params(c_std, c_fused)
    # shared trunk counted once; both groups keep their own learning rate, each part its own name
    assert sorted((g["name"], g["lr"]) for g in opt_fused.param_groups) == [
        ("critic/decay", 0.1),
        ("critic/no_decay", 0.1),
        ("policy/decay", 0.01),
        ("policy/no_decay", 0.01),
    ]
    n_params = sum(len(g["params"]) for g in opt_std.param_groups)
    assert n_params == len(list(c_std.parameters()))


def test_tiny_llama_matches_standard():
    from lit_rlhf.models import build_policy

    tiny = {"hidden_size": 16, "num_layers": 1, "num_heads": 2, "intermediate_size": 32, "max_positions": 16}
    reference, _ = build_policy(tiny=tiny, seed=3)
    model, _ = build_policy(tiny=tiny, seed=3)
    standard = build_adamw(reference.named_parameters(), lr=1e-2, weight_decay=0.1)
    in_backward = FusedBackwardAdamW(model.named_parameters(), lr=1e-2, weight_decay=0.1)
    ids = torch.randint(4, 50, (2, 8), generator=torch.Generator().manual_seed(0))
    for m, opt in ((reference, standard), (model, in_backward)):
        for _ in range(3):
            opt.zero_grad()
            m(input_ids=ids, labels=ids).loss.backward()
            opt.step()
    _assert_same_params(reference, model)
