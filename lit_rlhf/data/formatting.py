"""Turning a prompt and a response into token ids, the same way for every stage.

The prompt goes through the tokenizer's chat template when it has one (real chat
models, and the embedded gym tokenizer); otherwise an HH-RLHF style
"Human: ... Assistant:" frame. Prompt and response are tokenized separately and
concatenated, so the boundary between them is exact for loss masking.
"""

from __future__ import annotations


def prompt_text(tokenizer, prompt: str) -> str:
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True)
    return f"\n\nHuman: {prompt}\n\nAssistant:"


def encode_prompt(tokenizer, prompt: str) -> list[int]:
    return tokenizer(prompt_text(tokenizer, prompt), add_special_tokens=False)["input_ids"]


def encode_response(tokenizer, response: str) -> list[int]:
    """Response ids followed by EOS, so the model learns to stop."""
    text = response if response.startswith(" ") else " " + response
    return tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
