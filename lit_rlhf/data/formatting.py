"""Turning a prompt and a response into token ids, the same way for every stage.

The prompt goes through the tokenizer's chat template when it has one (real chat
models, and the embedded gym tokenizer); otherwise an HH-RLHF style
"Human: ... Assistant:" frame. Prompt and response are tokenized separately and
concatenated, so the boundary between them is exact for loss masking.
"""

from __future__ import annotations

import torch

HH_FRAME = "\n\nHuman: {prompt}\n\nAssistant:"  # the prompt frame for tokenizers without a chat template
RESPONSE_PREFIX = " "  # put before every response (unless it starts with it), after a chat template's newline too


def prompt_text(tokenizer, prompt: str) -> str:
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
        )
    return HH_FRAME.replace("{prompt}", prompt)


def encode_prompt(tokenizer, prompt: str) -> list[int]:
    return tokenizer(prompt_text(tokenizer, prompt), add_special_tokens=False)["input_ids"]


def encode_response(tokenizer, response: str) -> list[int]:
    """Response ids followed by EOS, so the model learns to stop.

    The response text gets ``RESPONSE_PREFIX`` (a space) in front unless it already starts with one,
    whatever the prompt ends with; published results depend on this, and saved reward models record
    it in their ``reward_model.json`` (see :func:`lit_rlhf.reward.data.describe_encoding`).
    """
    text = response if response.startswith(RESPONSE_PREFIX) else RESPONSE_PREFIX + response
    return tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]


def pad_batch(sequences: list[list[int]], pad_id: int, side: str = "right") -> tuple[torch.Tensor, torch.Tensor]:
    """Pad id lists into ``input_ids`` and ``attention_mask``, both ``[B, T]``.

    Training batches pad on the right; generation pads on the left, so that every row's
    next token is predicted from the last column.
    """
    if side not in ("left", "right"):
        raise ValueError(f"side must be 'left' or 'right', got {side!r}")
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for i, seq in enumerate(sequences):
        if seq:
            cols = slice(width - len(seq), width) if side == "left" else slice(0, len(seq))
            ids[i, cols] = torch.tensor(seq)
            mask[i, cols] = 1
    return ids, mask


def position_ids(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions that skip left padding, as ``generate`` uses, so a padded row is read as it would be unpadded."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def truncate_keeping_response(
    prompt_ids: list[int], response_ids: list[int], budget: int
) -> tuple[list[int], list[int], dict[str, bool]]:
    """Fit prompt + response into ``budget`` tokens: the response is kept, the prompt loses tokens on the left.

    The end of a prompt matters most for its answer, and the response is what is learned or
    scored. A response that alone exceeds ``budget - 1`` is cut on the right (one prompt token
    always stays, so the first response token has something to be predicted from). Returns the
    two id lists and which of them were cut.
    """
    cut = {"prompt_cut": False, "response_cut": False}
    if len(response_ids) > budget - 1:
        response_ids, cut["response_cut"] = response_ids[: budget - 1], True
    room = budget - len(response_ids)
    if len(prompt_ids) > room:
        prompt_ids, cut["prompt_cut"] = prompt_ids[len(prompt_ids) - room :], True
    return prompt_ids, response_ids, cut
