"""Rollouts: sample responses with the KV cache, then score every response token in one forward per model."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, fields

import torch

from lit_rlhf.core.logprobs import token_logprobs
from lit_rlhf.data.errors import ConfigError
from lit_rlhf.data.formatting import encode_prompt, position_ids
from lit_rlhf.generation import left_pad
from lit_rlhf.models.adapters import is_adapted
from lit_rlhf.models.modes import eval_mode
from lit_rlhf.ppo.reward_parts import RewardParts


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


def minibatch_indices(order: torch.Tensor, num_minibatches: int) -> tuple[torch.Tensor, ...]:
    """``order`` ``[N]`` (shuffled row indices) cut into exactly ``num_minibatches`` consecutive chunks.

    Chunk sizes differ by at most one (the first ``N % num_minibatches`` are one row longer), so a
    batch that does not divide still gets the configured number of optimizer steps. More minibatches
    than rows is refused: an empty minibatch would be an optimizer step without a loss.
    """
    if not 1 <= num_minibatches <= order.numel():
        raise ConfigError(
            f"num_minibatches={num_minibatches} must be between 1 and the batch's {order.numel()} "
            "rollouts (prompts per iteration on this rank)"
        )
    return torch.tensor_split(order, num_minibatches)


def response_mask_until_eos(responses: torch.Tensor, eos_id: int) -> torch.Tensor:
    """1 up to and including the first EOS of each row (EOS is an action too), 0 after; ``[B, R]``."""
    is_eos = responses == eos_id
    after_eos = (is_eos.long().cumsum(-1) - is_eos.long()) > 0
    return (~after_eos).long()


@torch.no_grad()
def sample_rollout(
    policy,
    tokenizer,
    prompts: list[str],
    max_new_tokens: int,
    temperature: float = 1.0,
    top_p: float = 1.0,
    greedy: bool = False,
) -> Rollout:
    """Sample one response per prompt from ``policy`` (left-padded batch, KV cache); ``greedy``: its argmax answer."""
    sampling = {} if greedy else {"temperature": temperature, "top_p": top_p, "top_k": 0}
    device = next(policy.parameters()).device
    prompt_ids, prompt_mask = left_pad([encode_prompt(tokenizer, p) for p in prompts], tokenizer.pad_token_id)
    with eval_mode(policy):
        sequences = policy.generate(
            input_ids=prompt_ids.to(device),
            attention_mask=prompt_mask.to(device),
            do_sample=not greedy,
            **sampling,
            max_new_tokens=max_new_tokens,
            use_cache=True,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
    width = prompt_ids.size(1)
    responses = sequences[:, width:]
    response_mask = response_mask_until_eos(responses, tokenizer.eos_token_id)
    responses = torch.where(response_mask.bool(), responses, tokenizer.pad_token_id)
    input_ids = torch.cat([prompt_ids.to(device), responses], dim=1)
    attention_mask = torch.cat([prompt_mask.to(device), response_mask], dim=1)
    return Rollout(input_ids, attention_mask, response_mask, width)


_TAKES_LOGITS_TO_KEEP: dict[type, bool] = {}  # a plain dict, which torch.compile traces without complaint


def _takes_logits_to_keep(model_class: type) -> bool:
    if model_class not in _TAKES_LOGITS_TO_KEEP:
        _TAKES_LOGITS_TO_KEEP[model_class] = "logits_to_keep" in inspect.signature(model_class.forward).parameters
    return _TAKES_LOGITS_TO_KEEP[model_class]


def response_logits(model, rollout: Rollout) -> torch.Tensor:
    """Logits ``[B, R, V]`` that score the response tokens (one forward).

    Only the last R + 1 positions feed the LM head when the model takes ``logits_to_keep``
    (transformers' causal LMs): with a real vocabulary the ``[B, P, V]`` prompt logits would be
    most of the forward's memory and nobody reads them. Models without it return every
    position; the same slice serves both.
    """
    width = rollout.input_ids.size(1) - rollout.prompt_width
    inner = model.get_base_model() if is_adapted(model) else model  # an adapted model passes the argument on
    keep = {"logits_to_keep": width + 1} if _takes_logits_to_keep(type(inner)) else {}
    logits = model(
        input_ids=rollout.input_ids,
        attention_mask=rollout.attention_mask,
        position_ids=position_ids(rollout.attention_mask),
        use_cache=False,
        **keep,
    ).logits
    return logits[:, -(width + 1) : -1]


def response_logprobs(model, rollout: Rollout, temperature: float = 1.0, with_logits: bool = False):
    """Log-probs ``[B, R]`` of the response tokens under ``model`` (one forward); optionally the logits too."""
    logits = response_logits(model, rollout)
    labels = rollout.input_ids[:, rollout.prompt_width :]
    logprobs = token_logprobs(logits, labels, temperature=temperature)
    return (logprobs, logits) if with_logits else logprobs


def response_values(critic, rollout: Rollout) -> torch.Tensor:
    """Critic values ``[B, R]`` at the states from which each response token was chosen."""
    values = critic(rollout.input_ids, rollout.attention_mask, position_ids(rollout.attention_mask))
    return values[:, rollout.prompt_width - 1 : -1]


def decode_responses(tokenizer, rollout: Rollout) -> list[str]:
    rows = (rollout.input_ids[:, rollout.prompt_width :] * rollout.response_mask).tolist()
    masks = rollout.response_mask.tolist()
    texts = []
    for row, mask in zip(rows, masks):
        ids = [t for t, m in zip(row, mask) if m and t != tokenizer.eos_token_id]
        texts.append(tokenizer.decode(ids, skip_special_tokens=True).strip())
    return texts


def reward_sequences(rollout: Rollout, eos_id: int, pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The rollout as a chat-format reward input: prompt ids, response ids, EOS; ``[B, P+R+1]`` ids and mask.

    Scoring text appends EOS to every response (``encode_response``). A sampled response that
    stopped already ends in its EOS; one cut at ``max_new_tokens`` gets it in one extra column.
    Rows stay left-padded before the prompt and right-padded after the response.
    """
    responses = rollout.input_ids[:, rollout.prompt_width :]
    stopped = ((responses == eos_id) & rollout.response_mask.bool()).any(-1)
    last_ids = torch.where(stopped, pad_id, eos_id).to(rollout.input_ids.dtype)
    input_ids = torch.cat([rollout.input_ids, last_ids[:, None]], dim=1)
    attention_mask = torch.cat([rollout.attention_mask, (~stopped).to(rollout.attention_mask.dtype)[:, None]], dim=1)
    return input_ids, attention_mask


def _token_scorer(reward_fn: Callable):
    """The object that can score token ids behind ``reward_fn``: itself, or the owner of a bound ``score``
    method (``RewardModel.score``, as users pass it); None for any other callable."""
    owner = getattr(reward_fn, "__self__", None)
    candidate = owner if owner is not None and getattr(owner, "score", None) == reward_fn else reward_fn
    needs = ("reads_tokens_of", "score_tokens", "max_length")
    return candidate if all(hasattr(candidate, name) for name in needs) else None


def rollout_rewards(
    reward_fn: Callable, tokenizer, prompts: list[str], responses: list[str], rollout: Rollout
) -> list[float]:
    """r(x, y) for each row of ``rollout``; ``responses`` are its decoded texts.

    A reward model that tokenizes as the policy does (``RewardModel.reads_tokens_of``) scores
    the rollout's own ids: no decode and re-encode round trip, and it reads exactly the tokens
    the policy sampled. Any other ``reward_fn(prompts, responses)`` (a reward model with another
    tokenizer, a rule) gets the text; so does a batch with a row longer than the reward model's
    ``max_length``, which the text path truncates.
    """
    if isinstance(reward_fn, RewardParts):  # each part by its own best path (a reward model reads the ids)
        by_part = {
            name: rollout_rewards(part, tokenizer, prompts, responses, rollout)
            for name, part in reward_fn.parts.items()
        }
        return reward_fn.combine(by_part)
    scorer = _token_scorer(reward_fn)
    if scorer is not None and scorer.reads_tokens_of(tokenizer):
        input_ids, attention_mask = reward_sequences(rollout, tokenizer.eos_token_id, tokenizer.pad_token_id)
        if int(attention_mask.sum(-1).max()) <= scorer.max_length:
            return scorer.score_tokens(input_ids, attention_mask).tolist()
    return list(reward_fn(prompts, responses))
