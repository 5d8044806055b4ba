"""Every key a user can override under `module.` reaches the LightningModule it configures.

For each experiment that trains, each leaf of its `module` config is overridden with a different value on the
command line (as Hydra composes it), the module is built from that config, and the new value must be found
where the module keeps it. A key that composes but lands nowhere fails here; a new key needs an entry in
`WHERE` saying where it lands.
"""

from __future__ import annotations

import functools

import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from lit_rlhf.models import build_policy
from lit_rlhf.reward.model import build_reward_model

TINY = {"hidden_size": 32, "num_layers": 1, "num_heads": 2, "intermediate_size": 64}
EXPERIMENTS = {
    "sft": "sft",
    "gym_sft": "sft",
    "reward_model": "reward_model",
    "gym_reward_model": "reward_model",
    "ppo": "ppo",
    "gym_ppo": "ppo",
    "dpo": "dpo",
    "gym_dpo": "dpo",
}
MARKERS = ("_target_", "_partial_", "_convert_")

# Where a module keeps what `module.<first part>` sets: a function of (module, rest of the key path).
WHERE = {
    "config": lambda m, rest: _dig(m.config, rest),
    "optimizer": lambda m, rest: _dig(m.optimizer_factory.keywords, rest),
    "scheduler": lambda m, rest: _dig(m.scheduler_factory.keywords, rest),
    "param_groups": lambda m, rest: _dig(m.param_groups, rest),
    "weight_decay": lambda m, rest: m.weight_decay,
    "fused_optimizer": lambda m, rest: m.fused_optimizer,
    "prior_coef": lambda m, rest: m.prior_coef,
    "margin": lambda m, rest: m.margin,
    "use_data_margin": lambda m, rest: m.use_data_margin,
    "max_length": lambda m, rest: m.scorer.max_length,
    "input_format": lambda m, rest: m.scorer.input_format,
}
# Values that must come from a fixed set (the first other one is used).
CHOICES = {
    "kl_estimator": ["k1", "k2", "k3"],
    "reward_normalization": ["none", "running", "batch"],
    "loss_type": ["sigmoid", "ipo"],
    "fused_optimizer": ["auto", True, False],
    "input_format": ["chat", "auto"],
    "advantage_estimator": ["gae", "reinforce_pp"],  # the group estimators need samples_per_prompt >= 2 too
    "kl_penalty": ["reward", "loss"],
    "loss_aggregation": ["token", "sequence"],
    "ntp_target": ["labels", "reference"],
}
# Flipping these alone would make the config invalid on purpose (each is checked elsewhere): the partner
# setting that makes the flipped value valid.
PARTNERS = {"fused_backward": ["module.config.max_grad_norm=null"], "adaptive_kl": ["module.config.kl_target=6.0"]}


def _dig(value, path: list[str]):
    for part in path:
        value = value[part] if isinstance(value, dict) else getattr(value, part)
    return value


def _leaves(node, prefix: str = ""):
    """(dotted path, value) of every leaf under ``node``, markers left out."""
    for key, value in node.items():
        if key in MARKERS:
            continue
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            yield from _leaves(value, f"{path}.")
        else:
            yield path, value


def _changed(key: str, value):
    """A valid value other than ``value`` for the leaf ``key``."""
    name = key.rsplit(".", 1)[-1]
    if name in CHOICES:
        return next(v for v in CHOICES[name] if v != value)
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        return value * 0.5 if value else 0.25
    if isinstance(value, list):
        return [v * 0.5 for v in value]
    if value is None:
        return {"max_grad_norm": 2.0, "kl_target": 6.0}.get(name, 0.5)
    raise AssertionError(f"no changed value for {key}={value!r}: add one to this test")


def _override(key: str, value) -> str:
    """``key=value`` in Hydra's override grammar."""
    if isinstance(value, list):
        return f"{key}=[{','.join(map(str, value))}]"
    if value is None:
        return f"{key}=null"
    return f"{key}={str(value).lower() if isinstance(value, bool) else value}"


def _build(cfg, stage: str):
    if stage == "reward_model":
        model, tokenizer = build_reward_model("embedded", tiny=TINY)
        return instantiate(cfg.module, model=model, tokenizer=tokenizer)
    model, tokenizer = build_policy("embedded", tiny=TINY)
    if stage == "sft":
        return instantiate(cfg.module, model=model, tokenizer=tokenizer)
    batches = lambda k: {}  # noqa: E731  the NTP term's batches (unused: nothing trains here)
    if stage == "ppo":
        return instantiate(
            cfg.module,
            policy=model,
            tokenizer=tokenizer,
            reward_fn=lambda ps, rs: [0.0] * len(ps),
            ref_scores={"a prompt": 0.0},
            ntp_batches=batches,
        )
    return instantiate(cfg.module, policy=model, tokenizer=tokenizer, ntp_batches=batches)


def _cases():
    from lit_rlhf.run import compose

    for experiment, stage in EXPERIMENTS.items():
        module = OmegaConf.to_container(compose([f"experiment={experiment}"]).module, resolve=False)
        for key, value in _leaves(module):
            if isinstance(value, str) and value.startswith("${"):
                value = None  # an interpolation (max_length: ${data.max_length}); any literal replaces it
            yield pytest.param(experiment, stage, key, value, id=f"{experiment}:{key}")


@pytest.mark.parametrize("experiment, stage, key, value", list(_cases()))
def test_every_module_override_reaches_the_module(compose_config, experiment, stage, key, value):
    head, *rest = key.split(".")
    assert head in WHERE, f"module.{key} is not known to land anywhere: add where it lands to WHERE"
    new = 64 if key == "max_length" else _changed(key, value)
    overrides = [_override(f"module.{key}", new), *PARTNERS.get(key.rsplit(".", 1)[-1], [])]
    if key == "scheduler" and value is None:  # a module without a schedule takes one
        new = {"warmup_ratio": 0.1}
        overrides = [
            "module.scheduler={_target_: lit_rlhf.systems.optimizers.warmup_cosine, _partial_: true, warmup_ratio: 0.1}"
        ]
    cfg = compose_config(f"experiment={experiment}", *overrides)
    module = _build(cfg, stage)
    found = WHERE[head](module, rest)
    expected = tuple(new) if isinstance(new, list) and isinstance(found, tuple) else new
    assert found == expected, f"module.{key}={new!r} composed, but the module holds {found!r}"


def test_the_optimizer_the_trainer_gets_has_the_overridden_rates(compose_config):
    """The partial's settings reach the optimizer itself, per parameter group (PPO's policy and critic)."""
    import lightning as L

    cfg = compose_config(
        "experiment=gym_ppo",
        "module.optimizer.lr=0.123",
        "module.param_groups.critic.lr=0.456",
        "module.weight_decay=0.01",
    )
    module = _build(cfg, "ppo")
    module.trainer = L.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False)
    optimizer = module.configure_optimizers()
    rates = {group["name"]: group["lr"] for group in optimizer.param_groups}
    assert rates == {"policy/decay": 0.123, "policy/no_decay": 0.123, "critic/decay": 0.456, "critic/no_decay": 0.456}
    assert {g["name"]: g["weight_decay"] for g in optimizer.param_groups}["policy/decay"] == 0.01
    assert isinstance(module.optimizer_factory, functools.partial)


@pytest.mark.parametrize(
    "override, named",
    [
        ("module.config.no_such_knob=1", "no_such_knob"),
        ("module.config.kl_coef=abc", "kl_coef"),
        ("module.config.ppo_epochs=1.5", "ppo_epochs"),
    ],
)
def test_a_misspelt_or_mistyped_algorithm_setting_fails_naming_it(compose_config, override, named):
    from hydra.errors import ConfigCompositionException

    with pytest.raises(ConfigCompositionException, match=named):
        compose_config("experiment=ppo", override)


def test_an_invalid_algorithm_value_fails_when_the_module_is_built(compose_config):
    from lit_rlhf.data.errors import ConfigError

    cfg = compose_config("experiment=gym_dpo", "module.config.beta=-1")
    with pytest.raises(ConfigError, match="beta=-1"):  # a user error: the command ends in this one line
        _build(cfg, "dpo")


@pytest.mark.parametrize(
    "experiment, home",
    [
        ("sft", "lit_rlhf.sft.module"),
        ("reward_model", "lit_rlhf.reward.module"),
        ("ppo", "lit_rlhf.ppo.module"),
        ("dpo", "lit_rlhf.dpo.module"),
    ],
)
def test_a_module_built_by_hand_gets_the_configs_optimizer(compose_config, experiment, home):
    """One home for each default: a module built without an optimizer uses conf/module/<stage>.yaml's."""
    import importlib

    module = importlib.import_module(home)
    optimizer = compose_config(f"experiment={experiment}").module.optimizer
    assert module.DEFAULT_OPTIMIZER.func.__name__ == optimizer._target_.rsplit(".", 1)[1]
    settings = {k: tuple(v) if OmegaConf.is_list(v) else v for k, v in optimizer.items() if not k.startswith("_")}
    assert module.DEFAULT_OPTIMIZER.keywords == settings
    if experiment == "ppo":
        cfg = compose_config("experiment=ppo")
        assert module.DEFAULT_PARAM_GROUPS == OmegaConf.to_container(cfg.module.param_groups)
