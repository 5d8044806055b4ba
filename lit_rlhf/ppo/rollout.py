"""Rollouts: sample responses with the KV cache, then score every response token in one forward per model."""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch

from lit_rlhf.core.logprobs import token_logprobs
from lit_rlhf.data.formatting import encode_prompt
from lit_rlhf.generation import left_pad


@dataclass
class Rollout:
    """One batch of experience. ``[B, P+R]`` sequences; response-aligned tensors are ``[B, R]``."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    response_mask: torch.Tensor
    prompt_width: int
    logprobs: torch.Tensor | None = None
    ref_logprobs: torch.Tensor | None = None
    values: torch.Tensor | None = None
    advantages: torch.Tensor | None = None
    returns: torch.Tensor | None = None

    def select(self, index: torch.Tensor) -> Rollout:
        """The rows in ``index`` (a minibatch)."""
        picked = {f.name: getattr(self, f.name) for f in fields(self)}
        return Rollout(**{k: v[index] if isinstance(v, torch.Tensor) else v for k, v in picked.items()})


def position_ids(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions that skip left padding, as ``generate`` uses, so scoring matches sampling exactly."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def response_mask_until_eos(responses: torch.Tensor, eos_id: int) -> torch.Tensor:
    """1 up to and including the first EOS of each row (EOS is an action too), 0 after; ``[B, R]``."""
    is_eos = responses == eos_id
    after_eos = (is_eos.long().cumsum(-1) - is_eos.long()) > 0
    return (~after_eos).long()


@torch.no_grad()
def sample_rollout(policy, tokenizer, prompts: list[str], max_new_tokens: int, temperature: float = 1.0,
                   top_p: float = 1.0) -> Rollout:
    """Sample one response per prompt from ``policy`` (left-padded batch, KV cache)."""
    device = next(policy.parameters()).device
    prompt_ids, prompt_mask = left_pad([encode_prompt(tokenizer, p) for p in prompts], tokenizer.pad_token_id)
    was_training = policy.training
    policy.eval()
    sequences = policy.generate(
        input_ids=prompt_ids.to(device), attention_mask=prompt_mask.to(device), do_sample=True,
        temperature=temperature, top_p=top_p, top_k=0, max_new_tokens=max_new_tokens, use_cache=True,
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
    )
    policy.train(was_training)
    width = prompt_ids.size(1)
    responses = sequences[:, width:]
    response_mask = response_mask_until_eos(responses, tokenizer.eos_token_id)
    responses = torch.where(response_mask.bool(), responses, tokenizer.pad_token_id)
    input_ids = torch.cat([prompt_ids.to(device), responses], dim=1)
    attention_mask = torch.cat([prompt_mask.to(device), response_mask], dim=1)
    return Rollout(input_ids, attention_mask, response_mask, width)


def response_logprobs(model, rollout: Rollout, temperature: float = 1.0, with_logits: bool = False):
    """Log-probs ``[B, R]`` of the response tokens under ``model`` (one forward); optionally the logits too."""
    logits = model(input_ids=rollout.input_ids, attention_mask=rollout.attention_mask,
                   position_ids=position_ids(rollout.attention_mask), use_cache=False).logits
    response_logits = logits[:, rollout.prompt_width - 1:-1]
    labels = rollout.input_ids[:, rollout.prompt_width:]
    logprobs = token_logprobs(response_logits, labels, temperature=temperature)
    return (logprobs, response_logits) if with_logits else logprobs


def response_values(critic, rollout: Rollout) -> torch.Tensor:
    """Critic values ``[B, R]`` at the states from which each response token was chosen."""
    values = critic(rollout.input_ids, rollout.attention_mask, position_ids(rollout.attention_mask))
    return values[:, rollout.prompt_width - 1:-1]


def decode_responses(tokenizer, rollout: Rollout) -> list[str]:
    rows = (rollout.input_ids[:, rollout.prompt_width:] * rollout.response_mask).tolist()
    masks = rollout.response_mask.tolist()
    texts = []
    for row, mask in zip(rows, masks):
        ids = [t for t, m in zip(row, mask) if m and t != tokenizer.eos_token_id]
        texts.append(tokenizer.decode(ids, skip_special_tokens=True).strip())
    return texts
