"""Model and tokenizer builders."""

from lit_rlhf.models.builder import (
    EMBEDDED,
    build_policy,
    save_hf_checkpoint,
    tiny_llama_config,
)
from lit_rlhf.models.tokenizer import build_gym_tokenizer

__all__ = ["EMBEDDED", "build_gym_tokenizer", "build_policy", "save_hf_checkpoint", "tiny_llama_config"]
