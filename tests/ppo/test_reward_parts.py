"""Rewards as weighted parts: hand-worked sums, the gym's verifiers, the config that builds them."""

import pytest
import torch

from lit_rlhf.data.errors import ConfigError
from lit_rlhf.gym import AlignmentGym
from lit_rlhf.gym.verifiers import JsonAnswer, MathAnswer
from lit_rlhf.models import build_policy
from lit_rlhf.ppo.reward_parts import LengthPenalty, RewardParts, build_reward_parts
from lit_rlhf.ppo.rollout import decode_responses, rollout_rewards, sample_rollout
from lit_rlhf.reward.model import RewardModel, build_reward_model

GYM = AlignmentGym(seed=0)
MATH = next(p for p in GYM.prompts("train") if p.category == "math")
FORMAT = next(p for p in GYM.prompts("train") if p.category == "format")
WRITING = next(p for p in GYM.prompts("train") if p.category == "writing")


def constant(value):
    return lambda prompts, responses: [value] * len(prompts)


def test_parts_are_summed_with_their_weights_and_their_means_kept():
    reward = RewardParts({"a": constant(1.0), "b": lambda ps, rs: [float(len(r)) for r in rs]}, {"b": -0.5})
    assert reward(["p", "q"], ["xx", "xxxx"]) == [1.0 - 1.0, 1.0 - 2.0]
    assert reward.last == {"a": 1.0, "b": 3.0}  # unweighted means, logged as reward/part/<name>


def test_length_penalty_by_hand():
    assert LengthPenalty(per_word=0.5, free_words=2)(["p"] * 3, ["a b", "a b c", "a b c d e"]) == [0.0, -0.5, -1.5]


def test_math_verifier_reads_the_last_number_and_ignores_other_categories():
    verify = MathAnswer(correct=1.0, wrong=-1.0)
    right, wrong = f"the answer is {MATH.target} .", "the answer is 99 ."
    got = verify([MATH.text, MATH.text, MATH.text, WRITING.text], [right, wrong, "no idea .", right])
    assert got == [1.0, -1.0, 0.0, 0.0]


def test_json_verifier_wants_exactly_an_answer_object():
    got = JsonAnswer()([FORMAT.text] * 3 + [MATH.text], ['{ "answer": "x" }', '{"a": 1}', "answer x", '{"answer": 1}'])
    assert got == [1.0, 0.0, 0.0, 0.0]


def test_verifiers_refuse_prompts_that_are_not_the_gyms():
    with pytest.raises(ValueError, match="not a gym prompt"):
        MathAnswer()(["what is love ?"], ["baby don't hurt me ."])


def test_the_config_builds_the_reward_model_rules_and_a_users_callable():
    spec = {
        "reward_model": {"weight": 0.5},
        "length": {"_target_": "lit_rlhf.ppo.reward_parts.LengthPenalty", "per_word": 1.0, "free_words": 1},
        "please": {"_target_": "user_rewards.says_please", "_partial_": True, "bonus": 3.0, "weight": 2.0},
    }
    reward = build_reward_parts(spec, constant(4.0))
    assert isinstance(reward, RewardParts) and reward.weights == {"reward_model": 0.5, "length": 1.0, "please": 2.0}
    assert reward(["p"], ["yes please"]) == [0.5 * 4.0 - 1.0 + 2.0 * 3.0]
    model_score = constant(0.0)
    assert build_reward_parts(None, model_score) is model_score


@pytest.mark.parametrize(
    "spec, message",
    [
        ({"rule": {"per_word": 1.0}}, "ppo.reward_parts.rule needs a _target_"),
        ({"reward_model": {"scale": 2}}, "takes only a weight"),
        ({"x": {"_target_": "builtins.dict"}}, "not a callable"),
        ({}, None),
    ],
)
def test_bad_reward_parts_are_named(spec, message):
    if message is None:  # an empty mapping means no parts: the reward model alone
        assert build_reward_parts(spec, constant(1.0))(["p"], ["r"]) == [1.0]
        return
    with pytest.raises(ConfigError, match=message):
        build_reward_parts(spec, constant(1.0))


def test_a_reward_model_part_scores_the_rollouts_token_ids(monkeypatch):
    torch.manual_seed(0)
    tiny = {"hidden_size": 32, "num_layers": 1, "num_heads": 2, "intermediate_size": 64}
    policy, tokenizer = build_policy("embedded", seed=0, tiny=tiny)
    reward_model = RewardModel(*build_reward_model("embedded", tiny=tiny))
    prompts = [MATH.text, WRITING.text]
    rollout = sample_rollout(policy, tokenizer, prompts, max_new_tokens=5)
    responses = decode_responses(tokenizer, rollout)
    by_text = reward_model.score(prompts, responses)
    calls = []
    score_tokens = RewardModel.score_tokens
    monkeypatch.setattr(
        RewardModel, "score_tokens", lambda self, *a, **k: calls.append(1) or score_tokens(self, *a, **k)
    )
    parts = RewardParts({"reward_model": reward_model.score, "length": LengthPenalty(per_word=0.1)})
    got = rollout_rewards(parts, tokenizer, prompts, responses, rollout)
    assert calls, "the reward model part was scored from text, not from the rollout's ids"
    assert got == pytest.approx([s - 0.1 * len(r.split()) for s, r in zip(by_text, responses)], abs=1e-4)
