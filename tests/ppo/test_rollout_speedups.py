"""Rollout shortcuts that must not change a number: token-level reward scoring and response-only logits."""

import pytest
import torch
from naive_reference import DECODERS, naive_response_logprobs, tiny_decoder
from transformers import GPT2Config, GPT2ForSequenceClassification

from lit_rlhf.data.formatting import encode_prompt, encode_response
from lit_rlhf.generation import left_pad
from lit_rlhf.gym import AlignmentGym
from lit_rlhf.gym.responses import ideal_response
from lit_rlhf.models import build_policy
from lit_rlhf.models.tokenizer import build_gym_tokenizer
from lit_rlhf.ppo.rollout import (
    Rollout,
    decode_responses,
    response_logits,
    response_logprobs,
    response_mask_until_eos,
    reward_sequences,
    rollout_rewards,
    sample_rollout,
)
from lit_rlhf.reward.data import encode_prompt_response
from lit_rlhf.reward.model import RewardModel, build_reward_model

TINY = {"hidden_size": 32, "num_layers": 2, "num_heads": 2, "intermediate_size": 64}
GYM = AlignmentGym(seed=0)
GYM_PROMPTS = GYM.prompts("train")[::37][:4]
PROMPTS = [p.text for p in GYM_PROMPTS]


def rollout_of(tokenizer, prompts: list[str], response_ids: list[list[int]], width: int) -> Rollout:
    """A rollout as ``sample_rollout`` builds it, from given response ids cut at ``width`` tokens."""
    prompt_ids, prompt_mask = left_pad([encode_prompt(tokenizer, p) for p in prompts], tokenizer.pad_token_id)
    cut = [ids[:width] + [tokenizer.pad_token_id] * (width - len(ids[:width])) for ids in response_ids]
    responses = torch.tensor(cut)
    response_mask = response_mask_until_eos(responses, tokenizer.eos_token_id)
    return Rollout(
        torch.cat([prompt_ids, responses], 1),
        torch.cat([prompt_mask, response_mask], 1),
        response_mask,
        prompt_ids.size(1),
    )


@pytest.fixture
def reward_model():
    model, tokenizer = build_reward_model(tiny=TINY, seed=1)
    return RewardModel(model, tokenizer)


def gpt2_reward_model(dropout: float = 0.1) -> RewardModel:
    """A decoder with absolute position embeddings: left padding shifts its positions unless they are given."""
    tokenizer = build_gym_tokenizer()
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_embd=32,
        n_layer=2,
        n_head=2,
        n_positions=128,
        num_labels=1,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        resid_pdrop=dropout,
        embd_pdrop=dropout,
        attn_pdrop=dropout,
    )
    torch.manual_seed(1)
    return RewardModel(GPT2ForSequenceClassification(config), tokenizer)


class TokenSpy:
    """Counts ``score_tokens`` calls of a RewardModel, to tell which path scored."""

    def __init__(self, reward_model: RewardModel):
        self.calls, self.inner = 0, reward_model.score_tokens
        reward_model.score_tokens = self

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self.inner(*args, **kwargs)


@pytest.mark.parametrize("decoder", ["llama", "gpt2"])
def test_token_path_scores_equal_the_text_path(reward_model, decoder):
    reward_model = reward_model if decoder == "llama" else gpt2_reward_model()
    policy_tokenizer = build_gym_tokenizer()  # another object, same tokenization
    width = 8
    texts = [ideal_response(GYM_PROMPTS[2]), "the answer is 5 .", "", ideal_response(GYM_PROMPTS[0])]
    response_ids = [encode_response(policy_tokenizer, t) for t in texts]
    assert len(response_ids[0]) > width + 1  # cut at max_new_tokens: no EOS in the rollout
    rollout = rollout_of(policy_tokenizer, PROMPTS, response_ids, width)
    assert rollout.attention_mask[:, 0].tolist() != [1, 1, 1, 1]  # prompts of different lengths: left padding
    spy = TokenSpy(reward_model)
    responses = decode_responses(policy_tokenizer, rollout)

    got = rollout_rewards(reward_model.score, policy_tokenizer, PROMPTS, responses, rollout)

    assert spy.calls == 1
    torch.testing.assert_close(
        torch.tensor(got), torch.tensor(reward_model.score(PROMPTS, responses)), rtol=1e-5, atol=1e-6
    )


def test_reward_sequences_end_every_row_with_one_eos():
    tokenizer = build_gym_tokenizer()
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    rollout = rollout_of(tokenizer, PROMPTS[:2], [[7, 8, eos], [7, 8, 9, 10, 11]], width=4)
    ids, mask = reward_sequences(rollout, eos, pad)
    lengths = mask.sum(-1)
    assert ids[torch.arange(2), (mask * torch.arange(mask.size(1))).argmax(-1)].tolist() == [eos, eos]
    assert ids[:, -1].tolist() == [pad, eos] and mask[:, -1].tolist() == [0, 1]
    assert lengths.tolist() == (rollout.attention_mask.sum(-1) + torch.tensor([0, 1])).tolist()


def test_sampled_rollout_scores_equal_the_text_path_where_tokens_round_trip(reward_model):
    """On sampled rollouts (left padding, responses cut without EOS) the two paths agree on every response
    the tokenizer would encode back to the same ids; responses holding special tokens are read as sampled."""
    policy, tokenizer = build_policy("embedded", seed=0, tiny=TINY)
    prompts = [p.text for p in GYM.prompts("train")[::11][:12]]
    torch.manual_seed(0)
    rollout = sample_rollout(policy, tokenizer, prompts, max_new_tokens=6)
    responses = decode_responses(tokenizer, rollout)
    got = torch.tensor(rollout_rewards(reward_model.score, tokenizer, prompts, responses, rollout))
    text = torch.tensor(reward_model.score(prompts, responses))
    ids = rollout.input_ids[:, rollout.prompt_width :]
    special = torch.isin(ids, torch.tensor([tokenizer.pad_token_id, tokenizer.bos_token_id, tokenizer.unk_token_id]))
    clean = ~(special & rollout.response_mask.bool()).any(-1)
    cut = rollout.response_mask.all(-1) & (ids[:, -1] != tokenizer.eos_token_id)
    assert int(clean.sum()) >= 6 and bool((clean & cut).any())
    torch.testing.assert_close(got[clean], text[clean], rtol=1e-5, atol=1e-6)


def test_another_tokenizer_or_a_plain_function_gets_the_text(reward_model):
    other = build_gym_tokenizer(extra_texts=["zyzzyva quokka"])  # one more word: other ids
    assert reward_model.reads_tokens_of(reward_model.tokenizer) and not reward_model.reads_tokens_of(other)
    rollout = rollout_of(other, PROMPTS, [encode_response(other, "zyzzyva quokka")] * 4, width=4)
    responses = decode_responses(other, rollout)
    spy = TokenSpy(reward_model)
    got = rollout_rewards(reward_model.score, other, PROMPTS, responses, rollout)
    assert spy.calls == 0 and got == reward_model.score(PROMPTS, responses)
    seen = []
    rollout_rewards(lambda ps, rs: seen.extend(rs) or [0.0] * len(rs), other, PROMPTS, responses, rollout)
    assert seen == responses == ["zyzzyva quokka"] * 4


def test_rows_longer_than_the_reward_model_takes_are_scored_as_text(reward_model):
    tokenizer = reward_model.tokenizer
    short = RewardModel(reward_model.model, tokenizer, max_length=12)  # prompts alone are longer: text truncates
    rollout = rollout_of(tokenizer, PROMPTS, [encode_response(tokenizer, "the answer is 5 .")] * 4, width=6)
    responses = decode_responses(tokenizer, rollout)
    spy = TokenSpy(short)
    assert rollout_rewards(short.score, tokenizer, PROMPTS, responses, rollout) == short.score(PROMPTS, responses)
    assert spy.calls == 0
    with pytest.raises(ValueError, match="max_length"):
        short.score_tokens(*reward_sequences(rollout, tokenizer.eos_token_id, tokenizer.pad_token_id))


class FullLogitsOnly(torch.nn.Module):
    """A causal LM whose forward has no ``logits_to_keep`` (like some remote-code models)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, position_ids, use_cache):
        return self.model(
            input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=use_cache
        )


@pytest.mark.parametrize("decoder", DECODERS)
def test_response_logits_match_a_forward_over_each_sequence_alone(decoder):
    """Keeping only the response's logits (``logits_to_keep``), or all of them, scores as one unpadded forward."""
    policy, tokenizer = tiny_decoder(decoder)
    torch.manual_seed(0)
    rollout = sample_rollout(policy, tokenizer, PROMPTS, max_new_tokens=5)
    assert rollout.attention_mask[:, 0].tolist() != [1, 1, 1, 1]  # left padding
    policy.eval()
    expected = naive_response_logprobs(policy, rollout)
    assert response_logits(policy, rollout).shape == (4, 5, len(tokenizer))
    for model in (policy, FullLogitsOnly(policy)):
        got = response_logprobs(model, rollout)
        for row, want in enumerate(expected):
            torch.testing.assert_close(got[row, : want.numel()].double(), want, rtol=1e-5, atol=1e-5)


def naive_score(model, ids: list[int]) -> float:
    """The classifier's output on one unpadded sequence, in eval mode."""
    model.eval()
    try:
        with torch.no_grad():
            return float(model(input_ids=torch.tensor([ids])).logits[0, 0])
    finally:
        model.train()


def test_reward_scores_are_read_without_dropout_and_the_mode_is_put_back():
    reward_model = gpt2_reward_model(dropout=0.1)
    model, tokenizer = reward_model.model, reward_model.tokenizer
    assert model.training
    texts = ["the answer is 5 .", "i am sorry", ideal_response(GYM_PROMPTS[0]), ""]
    expected = [
        naive_score(
            model, encode_prompt_response(tokenizer, p, r, reward_model.max_length, reward_model.input_format)[0]
        )
        for p, r in zip(PROMPTS, texts)
    ]
    text_scores = reward_model.score(PROMPTS, texts)
    assert model.training
    torch.testing.assert_close(torch.tensor(text_scores), torch.tensor(expected), rtol=1e-5, atol=1e-5)
    rollout = rollout_of(tokenizer, PROMPTS, [encode_response(tokenizer, t) for t in texts], width=24)
    ids, mask = reward_sequences(rollout, tokenizer.eos_token_id, tokenizer.pad_token_id)
    token_scores = reward_model.score_tokens(ids, mask)
    assert model.training
    unpadded = [row[keep.bool()].tolist() for row, keep in zip(ids, mask)]
    torch.testing.assert_close(
        token_scores, torch.tensor([naive_score(model, row) for row in unpadded]), rtol=1e-5, atol=1e-5
    )
