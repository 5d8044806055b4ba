"""Plain reference computations for rollout scoring: one unpadded sequence at a time, nothing shared with
``lit_rlhf.ppo.rollout`` (no position ids, no attention mask, no slicing helpers), in eval mode."""

from __future__ import annotations

import torch
from transformers import GPT2Config, GPT2LMHeadModel

from lit_rlhf.data.formatting import encode_prompt
from lit_rlhf.models import build_policy
from lit_rlhf.models.tokenizer import build_gym_tokenizer
from lit_rlhf.ppo.rollout import Rollout

TINY_LLAMA = {"hidden_size": 32, "num_layers": 2, "num_heads": 2, "intermediate_size": 64}
DECODERS = ("llama", "gpt2")  # rotary positions, and learned absolute ones (which left padding would shift)


def tiny_decoder(kind: str, dropout: float = 0.0, seed: int = 0):
    """``(model, tokenizer)``: the embedded tiny Llama, or a GPT-2 of the same size; both in train mode."""
    if kind == "llama":
        return build_policy("embedded", seed=seed, tiny={**TINY_LLAMA, "attention_dropout": dropout})
    if kind != "gpt2":
        raise ValueError(f"unknown decoder {kind!r}")
    tokenizer = build_gym_tokenizer()
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_embd=32,
        n_layer=2,
        n_head=2,
        n_positions=128,
        resid_pdrop=dropout,
        embd_pdrop=dropout,
        attn_pdrop=dropout,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = GPT2LMHeadModel(config)
    return model, tokenizer


def hand_rollout(tokenizer, prompts: list[str], response_ids: list[list[int]]) -> Rollout:
    """The batch layout ``sample_rollout`` builds, written out: prompts left-padded to one width, responses
    right-padded after their EOS. ``response_ids`` are used as given (end one with EOS to stop it early)."""
    prompt_rows = [encode_prompt(tokenizer, p) for p in prompts]
    prompt_width, width = max(map(len, prompt_rows)), max(map(len, response_ids))
    pad = tokenizer.pad_token_id
    input_ids, attention_mask, response_mask = [], [], []
    for prompt, response in zip(prompt_rows, response_ids):
        left, right = prompt_width - len(prompt), width - len(response)
        input_ids.append([pad] * left + prompt + response + [pad] * right)
        attention_mask.append([0] * left + [1] * (len(prompt) + len(response)) + [0] * right)
        response_mask.append([1] * len(response) + [0] * right)
    return Rollout(torch.tensor(input_ids), torch.tensor(attention_mask), torch.tensor(response_mask), prompt_width)


def unpadded_rows(rollout: Rollout) -> list[tuple[torch.Tensor, int]]:
    """Each row's real tokens ``[L_i]`` (prompt then response, no padding) and its prompt length."""
    rows = []
    for ids, mask, response_mask in zip(rollout.input_ids, rollout.attention_mask, rollout.response_mask):
        prompt = ids[: rollout.prompt_width][mask[: rollout.prompt_width].bool()]
        response = ids[rollout.prompt_width :][response_mask.bool()]
        rows.append((torch.cat([prompt, response]), prompt.numel()))
    return rows


def _in_eval(model, fn):
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            return fn()
    finally:
        model.train(was_training)


def naive_response_logprobs(model, rollout: Rollout, temperature: float = 1.0) -> list[torch.Tensor]:
    """Per row, ``[R_i]`` float64 log-probs of its response tokens from a forward over that row alone."""
    out = []
    for ids, prompt_len in unpadded_rows(rollout):
        logits = _in_eval(model, lambda: model(input_ids=ids[None]).logits[0]).double() / temperature
        logp = torch.log_softmax(logits, dim=-1)
        # the token at position k is predicted by the logits at position k - 1
        positions = torch.arange(prompt_len, ids.numel())
        out.append(logp[positions - 1, ids[positions]])
    return out


def naive_response_values(critic, rollout: Rollout) -> list[torch.Tensor]:
    """Per row, ``[R_i]``: the critic's value at the last token read before each response token is chosen."""
    out = []
    for ids, prompt_len in unpadded_rows(rollout):
        values = _in_eval(critic, lambda: critic(ids[None], torch.ones_like(ids[None]))[0])
        out.append(values[prompt_len - 1 : ids.numel() - 1])
    return out
