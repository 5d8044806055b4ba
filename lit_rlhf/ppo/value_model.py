"""The PPO critic: a transformer backbone with a scalar head giving one value per token."""

from __future__ import annotations

import copy

import torch
from torch import nn

from lit_rlhf.models.adapters import is_adapted


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
