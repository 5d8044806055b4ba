"""Build a policy (causal LM) and its tokenizer from a hub name, a local path, or the embedded tiny default."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    LlamaConfig,
    LlamaForCausalLM,
)

from lit_rlhf.data.errors import ConfigError
from lit_rlhf.models.adapters import ADAPTER_DIR, apply_memory_options, is_adapted, merged_copy
from lit_rlhf.models.tokenizer import build_gym_tokenizer

EMBEDDED = "embedded"


def tiny_llama_config(
    vocab_size: int,
    hidden_size: int = 128,
    num_layers: int = 4,
    num_heads: int = 4,
    intermediate_size: int = 512,
    max_positions: int = 256,
    **token_ids,
) -> LlamaConfig:
    """A Llama-style config of about 1M parameters: small enough to train on a laptop CPU in minutes."""
    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_heads,
        max_position_embeddings=max_positions,
        tie_word_embeddings=False,
        **token_ids,
    )


def build_policy(
    source: str = EMBEDDED,
    trust_remote_code: bool = False,
    dtype: str | None = None,
    seed: int = 0,
    tiny: dict | None = None,
    revision: str | None = None,
    lora: dict | None = None,
    gradient_checkpointing: bool = False,
):
    """Return ``(model, tokenizer)``.

    ``source`` is ``"embedded"`` (a tiny Llama initialised from scratch with the gym's
    offline tokenizer), a local directory holding an HF checkpoint, or a hub name.
    ``trust_remote_code`` is needed for checkpoints such as ChatGLM that ship their own code.
    ``lora`` (a dict of LoRA settings, ``{}`` for the defaults) and ``gradient_checkpointing``: see
    ``lit_rlhf.models.adapters``.
    """
    if source == EMBEDDED:
        tokenizer = build_gym_tokenizer()
        config = tiny_llama_config(
            len(tokenizer),
            pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            **(tiny or {}),
        )
        with torch.random.fork_rng(devices=[]):  # seeded init without touching the caller's RNG
            torch.manual_seed(seed)
            model = LlamaForCausalLM(config)
        return apply_memory_options(model, lora, gradient_checkpointing, seed=seed), tokenizer
    name = checkpoint_name(source, "model")
    kwargs = {"trust_remote_code": trust_remote_code, "revision": revision}
    tokenizer = load_tokenizer(name, **kwargs)
    model = AutoModelForCausalLM.from_pretrained(name, dtype=_dtype(dtype), **kwargs)
    # from_pretrained returns eval mode; this model is for training
    return apply_memory_options(model.train(), lora, gradient_checkpointing, seed=seed), tokenizer


def checkpoint_name(source: str, what: str) -> str:
    """A local checkpoint directory (checked) or a hub name, as ``from_pretrained`` takes it."""
    path = Path(source).expanduser()
    if source.startswith((".", "/", "~")) and not path.exists():
        raise FileNotFoundError(f"{what} path {source!r} does not exist")
    if path.exists() and not (path / "config.json").exists():
        raise FileNotFoundError(f"{source!r} is a directory but holds no config.json: not an HF checkpoint")
    return str(path) if path.exists() else source


def load_tokenizer(name: str, **kwargs):
    tokenizer = AutoTokenizer.from_pretrained(name, **kwargs)
    if tokenizer.pad_token is None:  # many causal LMs ship without one; batching needs it
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _dtype(name: str | None):
    if name in (None, "auto"):
        return "auto" if name == "auto" else None
    try:
        return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]
    except KeyError:
        raise ConfigError(f"dtype must be one of auto, float32, bfloat16, float16; got {name!r}") from None


def save_hf_checkpoint(model, tokenizer, path: str | os.PathLike, extra_files: dict[str, str] | None = None) -> Path:
    """Write model and tokenizer in HF format, plus ``extra_files`` (``{file name: text}``), atomically: everything
    is written into a directory beside ``path`` that then replaces it in one step (``atomic_directory``), so
    ``path`` always holds a complete checkpoint, the old one or the new one. An adapted model (LoRA) is written
    merged, as a plain HF model, with its adapters alone under ``path/adapter``."""
    from lit_rlhf.systems.checkpoint_io import atomic_directory

    def fill(directory: Path) -> None:
        if is_adapted(model):
            # the adapter in use alone: a critic's adapter on the same base (critic_init=shared) is not the model's
            model.save_pretrained(directory / ADAPTER_DIR, selected_adapters=[model.active_adapter])
            merged_copy(model).save_pretrained(directory)
        else:
            model.save_pretrained(directory)
        tokenizer.save_pretrained(directory)
        for name, text in (extra_files or {}).items():
            (directory / name).write_text(text, encoding="utf-8")

    return atomic_directory(path, fill)
