"""Batched, seeded text generation with the KV cache and left padding; shared by every stage."""

from __future__ import annotations

import torch

from lit_rlhf.data.errors import ConfigError
from lit_rlhf.data.formatting import encode_prompt, pad_batch
from lit_rlhf.models.modes import eval_mode


def left_pad(sequences: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-pad id lists into ``input_ids`` and ``attention_mask``, both ``[B, T]``."""
    return pad_batch(sequences, pad_id, side="left")


@torch.no_grad()
def generate(
    model,
    tokenizer,
    prompts: list[str],
    max_new_tokens: int = 32,
    do_sample: bool = True,
    temperature: float = 1.0,
    top_p: float = 1.0,
    batch_size: int = 64,
    seed: int | None = 0,
) -> list[str]:
    """One response per prompt, decoded without special tokens. Seeded without touching global RNG."""
    if temperature <= 0 or not 0 < top_p <= 1:
        raise ConfigError(f"need temperature > 0 and 0 < top_p <= 1, got {temperature}, {top_p}")
    device = next(model.parameters()).device
    out: list[str] = []
    with eval_mode(model), torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        if seed is not None:
            torch.manual_seed(seed)
        for start in range(0, len(prompts), batch_size):
            encoded = [encode_prompt(tokenizer, p) for p in prompts[start : start + batch_size]]
            ids, mask = left_pad(encoded, tokenizer.pad_token_id)
            sampling = {"temperature": temperature, "top_p": top_p, "top_k": 0} if do_sample else {}
            generated = model.generate(
                input_ids=ids.to(device),
                attention_mask=mask.to(device),
                max_new_tokens=max_new_tokens,
                do_sample=do_sample,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
                use_cache=True,
                **sampling,
            )
            for row in generated[:, ids.shape[1] :].tolist():
                if tokenizer.eos_token_id in row:
                    row = row[: row.index(tokenizer.eos_token_id)]
                out.append(tokenizer.decode(row, skip_special_tokens=True).strip())
    return out


def generate_rounds(model, tokenizer, prompts: list[str], seeds: list[int], **options) -> list[list[str]]:
    """One :func:`generate` round per seed: ``len(seeds)`` × ``len(prompts)`` answers (``options`` go to each round)."""
    return [generate(model, tokenizer, prompts, seed=seed, **options) for seed in seeds]
