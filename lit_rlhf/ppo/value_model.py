"""The PPO critic: a transformer backbone with a scalar head giving one value per token."""

from __future__ import annotations

import contextlib
import copy

import torch
from torch import nn

from lit_rlhf.data.errors import ConfigError
from lit_rlhf.models.adapters import active_adapter, is_adapted

CRITIC_ADAPTER = "critic"


class ValueModel(nn.Module):
    """``forward(input_ids, attention_mask, position_ids) -> [B, T]`` values.

    Build it with ``from_policy`` (a copy of the policy's backbone, a fresh zero head, so
    initial values are 0) or ``from_reward_model`` (the reward model's backbone and score
    head: its values start as reward estimates, which shortens the critic's warm-up).
    """

    def __init__(self, backbone: nn.Module, head: nn.Linear):
        super().__init__()
        if head.out_features != 1:
            raise ValueError(f"the value head must have one output, got {head.out_features}")
        self.backbone, self.head = backbone, head

    @classmethod
    def from_policy(cls, policy: nn.Module) -> ValueModel:
        """A copy of the policy's backbone under a zero head. Of an adapted (LoRA) policy: a copy of its frozen
        base carrying copies of its adapters, which train as the critic's own."""
        inner = policy.get_base_model() if is_adapted(policy) else policy
        backbone = copy.deepcopy(inner.base_model)
        head = nn.Linear(policy.config.hidden_size, 1, bias=True)
        nn.init.zeros_(head.weight)
        nn.init.zeros_(head.bias)
        return cls(backbone, head.to(next(backbone.parameters()).dtype))

    @classmethod
    def from_reward_model(cls, classifier: nn.Module) -> ValueModel:
        """From an HF decoder ``*ForSequenceClassification`` (a ``score`` head over ``base_model``)."""
        head = getattr(classifier, "score", None)
        if not isinstance(head, nn.Linear):
            raise ValueError(
                "critic init from the reward model needs a decoder reward model with a `score` head "
                "(an encoder reward model tokenizes differently: use critic_init=policy)"
            )
        linear = nn.Linear(head.in_features, 1, bias=True).to(head.weight.dtype)
        with torch.no_grad():
            linear.weight.copy_(head.weight[:1])
            linear.bias.copy_(head.bias[:1] if head.bias is not None else torch.zeros(1))
        return cls(copy.deepcopy(classifier.base_model), linear)

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, position_ids: torch.Tensor | None = None
    ) -> torch.Tensor:
        hidden = self.backbone(
            input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=False
        ).last_hidden_state
        return self.head(hidden.to(self.head.weight.dtype)).squeeze(-1).float()


class SharedBaseCritic(nn.Module):
    """The critic of a LoRA policy on the policy's own frozen base: an adapter of its own (named ``critic``,
    configured like the policy's) and a zero value head, with no second copy of the base model.

    ``forward`` runs the policy's base with the critic's adapter in use instead of the policy's. The policy is
    not a submodule (its weights are the policy's): ``parameters()`` is the head, ``parameters_in_policy()``
    the critic's adapter, and both train in the optimizer's critic group. Under gradient checkpointing each
    block's recomputation in backward runs under the adapter its forward used (``recompute_under_same_adapter``),
    not the one in use when backward reaches it.
    """

    def __init__(self, policy: nn.Module, seed: int = 0):
        super().__init__()
        self.check(policy)
        object.__setattr__(self, "policy", policy)
        if getattr(policy, "is_gradient_checkpointing", False):
            policy.get_base_model().gradient_checkpointing_enable(
                gradient_checkpointing_kwargs={
                    "use_reentrant": False,
                    "context_fn": recompute_under_same_adapter(policy),
                }
            )
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            policy.add_adapter(CRITIC_ADAPTER, copy.deepcopy(policy.peft_config[policy.active_adapter]))
        for parameter in self.parameters_in_policy():
            parameter.requires_grad_(True)  # peft adds an adapter it does not use frozen
        self.head = nn.Linear(policy.config.hidden_size, 1, bias=True)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)
        self.head.to(next(policy.parameters()).dtype)

    @staticmethod
    def check(policy: nn.Module) -> None:
        """``ConfigError`` unless ``policy`` can carry the critic: a LoRA policy."""
        if not is_adapted(policy):
            raise ConfigError("ppo.critic_init=shared needs a LoRA policy (model.lora); use policy or reward_model")

    def parameters_in_policy(self) -> list[nn.Parameter]:
        return [p for name, p in self.policy.named_parameters() if f".{CRITIC_ADAPTER}." in name]

    def train(self, mode: bool = True) -> SharedBaseCritic:
        super().train(mode)
        self.policy.train(mode)  # its forward runs the policy's layers, dropout included
        return self

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, position_ids: torch.Tensor | None = None
    ) -> torch.Tensor:
        with active_adapter(self.policy, CRITIC_ADAPTER):
            hidden = (
                self.policy.get_base_model()
                .base_model(
                    input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=False
                )
                .last_hidden_state
            )
        return self.head(hidden.to(self.head.weight.dtype)).squeeze(-1).float()


def recompute_under_same_adapter(model: nn.Module):
    """A ``context_fn`` for ``torch.utils.checkpoint``: notes the adapter in use when a block runs forward and
    puts it back in use while backward recomputes that block."""

    def context_fn():
        return contextlib.nullcontext(), active_adapter(model, model.active_adapter)

    return context_fn
