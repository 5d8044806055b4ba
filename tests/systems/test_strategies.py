"""The strategy config group builds the Lightning strategies it names, with blocks matched by class name."""

import pytest
import torch
from hydra.utils import instantiate
from lightning.pytorch.strategies import DDPStrategy, FSDPStrategy, ModelParallelStrategy

from lit_rlhf.models import build_policy
from lit_rlhf.systems.strategies import BlockMatcher, fsdp_mixed_precision, fsdp_strategy

TINY = {"hidden_size": 32, "num_layers": 2, "num_heads": 2, "intermediate_size": 64}


def _strategy(compose_config, name, *overrides):
    return instantiate(compose_config(f"strategy={name}", *overrides).strategy)


def test_single_is_lightnings_auto(compose_config):
    assert _strategy(compose_config, "single") == "auto"


def test_ddp_takes_its_backend_from_the_config(compose_config):
    ddp = _strategy(compose_config, "ddp", "strategy.process_group_backend=gloo")
    assert isinstance(ddp, DDPStrategy) and ddp.process_group_backend == "gloo"
    assert _strategy(compose_config, "ddp").process_group_backend is None  # Lightning picks per device


def test_fsdp_wraps_each_decoder_layer_in_bf16_with_fp32_reduction(compose_config):
    fsdp = _strategy(
        compose_config, "fsdp", "strategy.activation_checkpointing=true", "strategy.sharding_strategy=shard_grad_op"
    )
    assert isinstance(fsdp, FSDPStrategy)
    assert fsdp.kwargs["use_orig_params"] is True
    assert fsdp.sharding_strategy.name == "SHARD_GRAD_OP"
    assert fsdp.mixed_precision.param_dtype == torch.bfloat16
    assert fsdp.mixed_precision.reduce_dtype == torch.float32 and fsdp.mixed_precision.buffer_dtype is None
    model, _ = build_policy("embedded", tiny=TINY)
    matcher = fsdp.kwargs["auto_wrap_policy"]._lambda_fn
    wrapped = [name for name, m in model.named_modules() if matcher(m)]
    assert wrapped == ["model.layers.0", "model.layers.1"]
    assert "auto_wrap_policy" in fsdp._activation_checkpointing_kwargs


def test_fsdp2_is_lightnings_model_parallel_strategy_with_the_block_names(compose_config):
    fsdp2 = _strategy(compose_config, "fsdp2", "strategy.block_classes=[Qwen2DecoderLayer]")
    assert isinstance(fsdp2, ModelParallelStrategy)
    assert fsdp2.block_classes == ("Qwen2DecoderLayer",) and fsdp2.mixed_precision == "bf16"


def test_block_classes_by_dotted_path_and_clear_errors():
    model, _ = build_policy("embedded", tiny=TINY)
    by_path = BlockMatcher("transformers.models.llama.modeling_llama.LlamaDecoderLayer")
    assert len(by_path.find(model)) == 2
    with pytest.raises(ValueError, match="block-like classes in this model: \\['LlamaDecoderLayer'\\]"):
        BlockMatcher("Qwen2DecoderLayer").find(model)
    with pytest.raises(ValueError, match="cannot import block class"):
        BlockMatcher("transformers.NoSuchLayer")
    with pytest.raises(ValueError, match="sharding_strategy"):
        fsdp_strategy(sharding_strategy="ZERO9")
    with pytest.raises(ValueError, match="mixed_precision"):
        fsdp_mixed_precision("int8")
    assert fsdp_mixed_precision(None) is None
