"""Memory options for any Hugging Face model: LoRA adapters (through ``peft``) and gradient checkpointing.

With LoRA only the adapters train: optimizer state and gradients shrink to a few percent of the model's, and
the frozen reference a stage needs is the same base model with its adapters switched off (``AdaptersOff``),
never a second copy. A checkpoint of an adapted model is written twice over: the adapters alone under
``adapter/`` and, in the checkpoint directory itself, the merged weights as a plain HF model that loads with
``transformers`` alone (``merged_copy``).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from lit_rlhf.data.errors import ConfigError

# LoRA settings a config may give (``model.lora``), with the defaults of a model built with ``lora: {}``.
LORA_DEFAULTS = {"r": 16, "alpha": 32, "dropout": 0.05, "target_modules": "all-linear"}
ADAPTER_DIR = "adapter"


def apply_memory_options(
    model: nn.Module,
    lora: dict | None = None,
    gradient_checkpointing: bool = False,
    task: str = "causal_lm",
    seed: int = 0,
) -> nn.Module:
    """``model`` with gradient checkpointing on (recomputes each block's activations in backward instead of
    keeping them) and/or LoRA adapters on its linear layers. ``lora`` is None (off) or a dict of
    ``LORA_DEFAULTS`` keys; ``target_modules: all-linear`` adapts every linear layer but the output head, for
    any architecture. ``task`` is ``causal_lm`` or ``seq_cls`` (a reward model: its fresh score head trains in
    full beside the adapters). ``seed`` draws the adapters' initial weights, apart from the caller's RNG."""
    if gradient_checkpointing:
        if not getattr(model, "supports_gradient_checkpointing", False):
            raise ConfigError(f"model.gradient_checkpointing: {type(model).__name__} does not support it")
        # non-reentrant: works with frozen inputs (LoRA) and with every block's own RNG (dropout)
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if lora is None:
        return model
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return _with_lora(model, dict(lora), task)


def _with_lora(model: nn.Module, lora: dict, task: str) -> nn.Module:
    try:
        from peft import LoraConfig, TaskType, get_peft_model
    except ImportError:
        raise ConfigError('model.lora needs the peft package: pip install -e ".[lora]"') from None
    unknown = sorted(set(lora) - set(LORA_DEFAULTS))
    if unknown:
        raise ConfigError(f"model.lora: unknown key(s) {unknown}; known: {sorted(LORA_DEFAULTS)}")
    options = {**LORA_DEFAULTS, **lora}
    if int(options["r"]) < 1:
        raise ConfigError(f"model.lora.r must be >= 1, got {options['r']}")
    targets = options["target_modules"]
    config = LoraConfig(
        r=int(options["r"]),
        lora_alpha=float(options["alpha"]),
        lora_dropout=float(options["dropout"]),
        target_modules=targets if isinstance(targets, str) else list(targets),
        task_type=TaskType.SEQ_CLS if task == "seq_cls" else TaskType.CAUSAL_LM,
    )
    return get_peft_model(model, config)


def is_adapted(model) -> bool:
    """Whether ``model`` carries ``peft`` adapters (``AdaptersOff`` of one included)."""
    return hasattr(model, "disable_adapter") and hasattr(model, "merge_and_unload")


class AdaptersOff:
    """``model`` seen with its adapters switched off: the frozen reference of an adapted policy, sharing its
    weights. Every call (``forward``, ``generate``) runs under ``disable_adapter``; other attributes are the
    model's. Not a module: it owns no parameters, so no checkpoint or optimizer sees it twice."""

    def __init__(self, model: nn.Module):
        object.__setattr__(self, "model", model)

    def __call__(self, *args, **kwargs):
        with self.model.disable_adapter():
            return self.model(*args, **kwargs)

    forward = __call__

    def generate(self, *args, **kwargs):
        with self.model.disable_adapter():
            return self.model.generate(*args, **kwargs)

    def __getattr__(self, name: str):
        return getattr(self.model, name)


def frozen_reference(policy: nn.Module):
    """The reference a stage compares its policy with: the base under the adapters of an adapted policy
    (``AdaptersOff``), else a frozen copy."""
    if is_adapted(policy):
        return AdaptersOff(policy)
    return copy.deepcopy(policy).requires_grad_(False).eval()


def merged_copy(model: nn.Module) -> nn.Module:
    """A plain HF model with the adapters merged into its weights (``model`` itself keeps them apart)."""
    return copy.deepcopy(model).merge_and_unload()


@contextmanager
def active_adapter(model: nn.Module, name: str) -> Iterator[nn.Module]:
    """``model`` (a ``peft`` model) with adapter ``name`` the one in use, then the one before it again.

    ``peft`` freezes the adapters it switches off (also when ``disable_adapter`` ends). Here every parameter
    that was trainable before or inside stays trainable afterwards: a leaf frozen between forward and backward
    gets no gradient, and two adapters on one base (a policy's and its critic's) train from one backward."""
    before, trainable = model.active_adapter, [p for p in model.parameters() if p.requires_grad]
    model.set_adapter(name)
    trainable += [p for p in model.parameters() if p.requires_grad]
    try:
        yield model
    finally:
        model.set_adapter(before)
        for parameter in trainable:
            parameter.requires_grad_(True)
