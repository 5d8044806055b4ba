"""Lightning strategies built from the ``conf/strategy/`` group: single device, DDP, FSDP and FSDP2.

Each builder returns what ``lightning.pytorch.Trainer(strategy=...)`` accepts, so the
config group plugs into ``trainer.strategy``. Transformer blocks are named by class name
(``"LlamaDecoderLayer"``, ``"Qwen2DecoderLayer"``, ``"GLMBlock"`` ...) and matched against
``type(module).__name__`` when the model is wrapped: that also finds classes of checkpoints
loaded with ``trust_remote_code``, which no import path can name ahead of time. A dotted
path (``"transformers.models.llama.modeling_llama.LlamaDecoderLayer"``) is imported and
matched with ``isinstance`` instead.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence

import torch
from lightning.pytorch.strategies import ModelParallelStrategy
from torch import nn

from lit_rlhf.data.errors import ConfigError

DTYPES = {
    "bf16": torch.bfloat16,
    "bfloat16": torch.bfloat16,
    "fp16": torch.float16,
    "float16": torch.float16,
    "fp32": torch.float32,
    "float32": torch.float32,
}


def _names(block_classes: str | Sequence[str]) -> tuple[str, ...]:
    names = (block_classes,) if isinstance(block_classes, str) else tuple(block_classes)
    if not names or not all(isinstance(n, str) and n for n in names):
        raise ConfigError(f"block_classes must be one or more class names, got {block_classes!r}")
    return names


def _dtype(value: str | None, key: str) -> torch.dtype | None:
    if value is None:
        return None
    if value not in DTYPES:
        raise ConfigError(f"{key} must be one of {sorted(DTYPES)} or null, got {value!r}")
    return DTYPES[value]


def _import_class(path: str) -> type:
    module_name, _, class_name = path.rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as err:
        raise ConfigError(f"cannot import block class {path!r}: {err}") from None


class BlockMatcher:
    """``matcher(module) -> bool``: is ``module`` one of the named transformer-block classes?

    Picklable (no lambdas), so strategies built from it survive Lightning's spawn launchers.
    """

    def __init__(self, block_classes: str | Sequence[str]):
        self.names = _names(block_classes)
        self.plain = frozenset(n for n in self.names if "." not in n)
        self.imported = tuple(_import_class(n) for n in self.names if "." in n)

    def __call__(self, module: nn.Module) -> bool:
        return type(module).__name__ in self.plain or (bool(self.imported) and isinstance(module, self.imported))

    def find(self, model: nn.Module) -> list[nn.Module]:
        """Every matching submodule of ``model``; raises if there is none (a misspelt name wraps nothing)."""
        blocks = [m for m in model.modules() if self(m)]
        if not blocks:
            seen = sorted(
                {
                    type(m).__name__
                    for m in model.modules()
                    if "Layer" in type(m).__name__ or "Block" in type(m).__name__
                }
            )
            raise ConfigError(
                f"no submodule of {type(model).__name__} is a {list(self.names)}; "
                f"block-like classes in this model: {seen or 'none'}"
            )
        return blocks


def block_policy(block_classes: str | Sequence[str]):
    """A ``torch.distributed.fsdp.wrap.CustomPolicy`` putting each named block in its own FSDP unit."""
    from torch.distributed.fsdp.wrap import CustomPolicy

    return CustomPolicy(BlockMatcher(block_classes))


def auto_strategy(name: str = "auto") -> str:
    """Lightning picks: one device runs without a distributed strategy; ``"auto"`` or any registered name."""
    return name


def ddp_strategy(
    process_group_backend: str | None = None,
    find_unused_parameters: bool = False,
    static_graph: bool = False,
    gradient_as_bucket_view: bool = True,
    timeout_minutes: float = 30.0,
):
    """Lightning's ``DDPStrategy``; ``process_group_backend=None`` means NCCL on GPUs and gloo on CPUs.

    PPO's manual optimization runs several backward passes per training step; Lightning
    re-arms DDP's reducer before each ``manual_backward``, so each one is all-reduced.
    """
    from datetime import timedelta

    from lightning.pytorch.strategies import DDPStrategy

    return DDPStrategy(
        process_group_backend=process_group_backend,
        find_unused_parameters=find_unused_parameters,
        static_graph=static_graph,
        gradient_as_bucket_view=gradient_as_bucket_view,
        timeout=timedelta(minutes=timeout_minutes),
    )


def fsdp_mixed_precision(mixed_precision: str | None, reduce_dtype: str | None = "fp32"):
    """torch FSDP ``MixedPrecision``: compute in ``mixed_precision``, reduce gradients in ``reduce_dtype``.

    Buffers are left in float32 (``buffer_dtype=None``): Llama-style rotary ``inv_freq`` buffers
    lose position resolution in bf16. Sharded master weights stay float32 either way.
    """
    compute, reduce = _dtype(mixed_precision, "mixed_precision"), _dtype(reduce_dtype, "reduce_dtype")
    if compute is None:
        return None
    from torch.distributed.fsdp import MixedPrecision

    return MixedPrecision(param_dtype=compute, reduce_dtype=reduce or compute, buffer_dtype=None)


def fsdp_strategy(
    block_classes: str | Sequence[str] = "LlamaDecoderLayer",
    mixed_precision: str | None = "bf16",
    reduce_dtype: str | None = "fp32",
    activation_checkpointing: bool = False,
    sharding_strategy: str = "FULL_SHARD",
    state_dict_type: str = "full",
    cpu_offload: bool = False,
    process_group_backend: str | None = None,
    use_orig_params: bool = True,
):
    """Lightning's ``FSDPStrategy`` (FSDP1) with one FSDP unit per transformer block.

    ``block_classes``: the decoder-layer class name(s) of the policy, critic and reference.
    ``mixed_precision``: ``bf16`` (default), ``fp16``, ``fp32`` or ``None`` to take it from
    ``trainer.precision`` instead. ``activation_checkpointing`` recomputes each block's
    activations in backward. ``sharding_strategy``: ``FULL_SHARD`` (ZeRO-3), ``SHARD_GRAD_OP``
    (ZeRO-2), ``NO_SHARD`` (DDP-like) or ``HYBRID_SHARD`` (shard within a node, replicate across
    nodes). ``use_orig_params=True`` is required here: the PPO module holds trainable (policy,
    critic) and frozen (reference) parameters side by side, and its optimizer groups name the
    policy's and the critic's parameters directly.
    """
    from lightning.pytorch.strategies import FSDPStrategy

    sharding = sharding_strategy.upper()
    valid = ("FULL_SHARD", "SHARD_GRAD_OP", "NO_SHARD", "HYBRID_SHARD", "_HYBRID_SHARD_ZERO2")
    if sharding not in valid:
        raise ConfigError(f"sharding_strategy must be one of {valid}, got {sharding_strategy!r}")
    if state_dict_type not in ("full", "sharded"):
        raise ConfigError(f"state_dict_type must be 'full' or 'sharded', got {state_dict_type!r}")
    return FSDPStrategy(
        auto_wrap_policy=block_policy(block_classes),
        activation_checkpointing_policy=block_policy(block_classes) if activation_checkpointing else None,
        mixed_precision=fsdp_mixed_precision(mixed_precision, reduce_dtype),
        sharding_strategy=sharding,
        state_dict_type=state_dict_type,
        cpu_offload=cpu_offload,
        process_group_backend=process_group_backend,
        use_orig_params=use_orig_params,
    )


def fsdp2_strategy(
    block_classes: str | Sequence[str] = "LlamaDecoderLayer",
    mixed_precision: str | None = "bf16",
    reduce_dtype: str | None = "fp32",
    data_parallel_size: int | str = "auto",
    save_distributed_checkpoint: bool = True,
    process_group_backend: str | None = None,
):
    """FSDP2 (``fully_shard``) through Lightning's ``ModelParallelStrategy``; see :class:`FSDP2Strategy`."""
    return FSDP2Strategy(
        block_classes,
        mixed_precision,
        reduce_dtype,
        data_parallel_size=data_parallel_size,
        tensor_parallel_size=1,
        save_distributed_checkpoint=save_distributed_checkpoint,
        process_group_backend=process_group_backend,
    )


class FSDP2Strategy(ModelParallelStrategy):
    """Lightning's ``ModelParallelStrategy`` that knows how to shard the module's models block by block.

    Lightning asks the LightningModule to apply FSDP2 in ``configure_model``; a module does so with
    ``self.trainer.strategy.shard_models(self.policy, self.critic, self.reference)``. FSDP2 is the
    strategy under which ``FusedBackwardAdamW`` can step inside backward: post-accumulate-grad
    hooks fire on the sharded gradients after the reduce-scatter.
    """

    def __init__(
        self,
        block_classes: str | Sequence[str] = "LlamaDecoderLayer",
        mixed_precision: str | None = "bf16",
        reduce_dtype: str | None = "fp32",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.block_classes = _names(block_classes)
        for key, value in (("mixed_precision", mixed_precision), ("reduce_dtype", reduce_dtype)):
            _dtype(value, key)  # a bad name fails when the strategy is built, not when sharding
        self.mixed_precision, self.reduce_dtype = mixed_precision, reduce_dtype

    def setup_environment(self) -> None:
        if self._data_parallel_size == "auto":  # every process shards (Lightning's "auto" means one per node)
            self._data_parallel_size = self.num_nodes * self.num_processes
        super().setup_environment()

    def shard_models(self, *models: nn.Module) -> None:
        from lit_rlhf.models.adapters import is_adapted

        if any(is_adapted(m) for m in models):  # not run yet: refused rather than trusted untested
            raise ConfigError(
                "model.lora under strategy=fsdp2 is not supported; use strategy=single or ddp "
                "(LoRA keeps optimizer state small enough that sharding it matters less)"
            )
        mesh = self.device_mesh["data_parallel"]
        for model in models:
            fully_shard_blocks(model, mesh, self.block_classes, self.mixed_precision, self.reduce_dtype)


def fully_shard_blocks(
    model: nn.Module,
    mesh,
    block_classes: str | Sequence[str] = "LlamaDecoderLayer",
    mixed_precision: str | None = "bf16",
    reduce_dtype: str | None = "fp32",
    reshard_after_forward: bool = True,
) -> nn.Module:
    """Apply FSDP2 ``fully_shard`` to every named block of ``model``, then to ``model`` (its root unit).

    Call it from ``LightningModule.configure_model`` with ``self.device_mesh["data_parallel"]``,
    once per trained or frozen model (policy, critic, reference), before the optimizer is built.
    """
    from torch.distributed.fsdp import FSDPModule, MixedPrecisionPolicy, fully_shard

    if isinstance(model, FSDPModule):  # already sharded (configure_model may run again, e.g. fit then test)
        return model
    policy = MixedPrecisionPolicy(
        param_dtype=_dtype(mixed_precision, "mixed_precision"), reduce_dtype=_dtype(reduce_dtype, "reduce_dtype")
    )
    for block in BlockMatcher(block_classes).find(model):
        fully_shard(block, mesh=mesh, mp_policy=policy, reshard_after_forward=reshard_after_forward)
    fully_shard(model, mesh=mesh, mp_policy=policy, reshard_after_forward=reshard_after_forward)
    return model
