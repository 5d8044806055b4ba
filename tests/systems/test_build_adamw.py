import pytest
import torch
from torch import nn

from lit_rlhf.systems.adamw import adamw_param_groups, build_adamw


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Embedding(10, 4), nn.Linear(4, 4), nn.LayerNorm(4), nn.Linear(4, 2, bias=False))


def test_decay_only_on_matrices():
    opt = build_adamw(_net(), lr=1e-3, weight_decay=0.1)
    for group in opt.param_groups:
        dims = {p.dim() for p in group["params"]}
        assert group["weight_decay"] == (0.1 if dims == {2} else 0.0)
        assert dims in ({2}, {1})
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(_net().parameters()))


@pytest.mark.parametrize("fused,expected", [("auto", True), (True, True), (False, None)])
def test_fused_option(fused, expected):
    opt = build_adamw(_net(), lr=1e-3, fused=fused)
    assert opt.defaults["fused"] is expected


def test_groups_keep_their_learning_rates_and_labels():
    net = _net()
    groups = [
        {"params": net[0].parameters(), "lr": 0.5, "name": "embed"},
        {"params": list(net[1:].parameters()), "name": "rest", "weight_decay": 0.3},
    ]
    opt = build_adamw(groups, lr=1e-3, weight_decay=0.1)
    summary = sorted((g["name"], g.get("lr"), g["weight_decay"], len(g["params"])) for g in opt.param_groups)
    # embed: one matrix (not split, keeps its name); rest: two matrices (decay 0.3) and three vectors (no decay)
    assert summary == [("embed", 0.5, 0.1, 1), ("rest/decay", 1e-3, 0.3, 2), ("rest/no_decay", 1e-3, 0.0, 3)]


def test_part_names_are_unique_and_splitting_again_changes_nothing():
    net = _net()
    plain = adamw_param_groups(net.named_parameters(), 0.1)
    assert [(g["name"], g["weight_decay"], len(g["params"])) for g in plain] == [
        ("decay", 0.1, 3),
        ("no_decay", 0.0, 3),
    ]
    again = adamw_param_groups(plain, 0.5)
    assert [(g["name"], g["weight_decay"], [id(p) for p in g["params"]]) for g in again] == [
        (g["name"], g["weight_decay"], [id(p) for p in g["params"]]) for g in plain
    ]
    # several unnamed groups stay unnamed: LearningRateMonitor numbers them
    unnamed = adamw_param_groups([{"params": net[0].parameters()}, {"params": net[1].parameters()}], 0.1)
    assert all("name" not in g for g in unnamed) and len(unnamed) == 3


def test_frozen_parameters_are_left_out_and_all_frozen_is_an_error():
    net = _net()
    net[0].weight.requires_grad_(False)
    groups = adamw_param_groups(net.named_parameters(), 0.1)
    assert all(p is not net[0].weight for g in groups for p in g["params"])
    net.requires_grad_(False)
    with pytest.raises(ValueError, match="frozen"):
        build_adamw(net, lr=1e-3)
    with pytest.raises(ValueError, match="no parameters"):
        build_adamw([], lr=1e-3)


def test_a_group_given_no_settings_takes_the_optimizers():
    from lit_rlhf.systems.adamw import actor_critic_param_groups

    policy, critic = _net(), nn.Linear(4, 1)
    groups = actor_critic_param_groups(policy, critic, {"policy": None, "critic": None})  # what `critic: null` gives
    assert [(g["name"], set(g) - {"params"}) for g in groups] == [("policy", {"name"}), ("critic", {"name"})]
