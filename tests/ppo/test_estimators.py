"""Which advantage each token gets, per estimator, on hand-worked rewards."""

import pytest
import torch

from lit_rlhf.ppo.config import PPOConfig
from lit_rlhf.ppo.estimators import baselined_returns, rollout_advantages

# two prompts × two answers; score on the last token, a KL penalty of -0.5 on answer 0's first token
REWARDS = torch.tensor([[-0.5, 1.0], [0.0, 3.0], [2.0, 0.0], [4.0, 0.0]])
MASK = torch.tensor([[1, 1], [1, 1], [1, 0], [1, 0]])


def test_grpo_sees_each_answers_summed_reward():
    # totals (0.5, 3.0 | 2.0, 4.0): group (0.5, 3): mean 1.75, std 1.25·√2
    config = PPOConfig(advantage_estimator="grpo", samples_per_prompt=2)
    advantages, returns = rollout_advantages(config, REWARDS, MASK)
    s = 1.25 * 2**0.5
    expected = torch.tensor([[-1.25 / s] * 2, [1.25 / s] * 2, [-1 / 2**0.5, 0], [1 / 2**0.5, 0]])
    torch.testing.assert_close(advantages, expected, atol=1e-4, rtol=1e-4)
    assert returns is None


def test_rloo_by_hand():
    config = PPOConfig(advantage_estimator="rloo", samples_per_prompt=2)
    advantages, _ = rollout_advantages(config, REWARDS, MASK)
    torch.testing.assert_close(advantages, torch.tensor([[-2.5, -2.5], [2.5, 2.5], [-2.0, 0.0], [2.0, 0.0]]))


def test_remax_needs_and_uses_greedy_scores():
    config = PPOConfig(advantage_estimator="remax")
    advantages, _ = rollout_advantages(config, REWARDS, MASK, greedy_scores=torch.tensor([1.0, 1.0, 3.0, 3.0]))
    torch.testing.assert_close(advantages, torch.tensor([[-0.5, -0.5], [2.0, 2.0], [-1.0, 0.0], [1.0, 0.0]]))
    with pytest.raises(ValueError, match="greedy"):
        rollout_advantages(config, REWARDS, MASK)


def test_gae_needs_values_and_returns_targets():
    config = PPOConfig(advantage_estimator="gae", whiten_advantages=False, gamma=1.0, lam=1.0)
    values = torch.zeros(4, 2)
    advantages, returns = rollout_advantages(config, REWARDS, MASK, values)
    # λ = γ = 1, V = 0: advantages are returns-to-go
    torch.testing.assert_close(advantages, torch.tensor([[0.5, 1.0], [3.0, 3.0], [2.0, 0.0], [4.0, 0.0]]))
    torch.testing.assert_close(returns, advantages)
    with pytest.raises(ValueError, match="values"):
        rollout_advantages(config, REWARDS, MASK)


@pytest.mark.parametrize("estimator", ["grpo", "rloo", "remax", "reinforce_pp"])
def test_each_estimator_ablation_composes_to_a_checked_config(estimator):
    from omegaconf import OmegaConf

    from lit_rlhf.run import compose

    cfg = compose(["experiment=gym_ppo", f"ablation=estimator_{estimator}"])
    config = OmegaConf.to_object(cfg.module.config)  # PPOConfig's own checks run here
    assert config.advantage_estimator == estimator
    # the same number of sampled answers per iteration as the default run
    assert cfg.ppo.prompts_per_iteration * config.samples_per_prompt == 16


# totals (0.5, 3.0 | 2.0, 4.0); each estimator's baseline taken off, by hand
BASELINED = {
    "grpo": [-1.25, 1.25, -1.0, 1.0],  # group means 1.75 and 3
    "rloo": [-2.5, 2.5, -2.0, 2.0],  # the other answer's total
    "reinforce_pp": [-1.875, 0.625, -0.375, 1.625],  # the batch's mean, 2.375
}


@pytest.mark.parametrize("name", sorted(BASELINED))
def test_baselined_returns_take_off_each_estimators_baseline(name):
    config = PPOConfig(advantage_estimator=name, samples_per_prompt=2)
    torch.testing.assert_close(baselined_returns(config, REWARDS, MASK), torch.tensor(BASELINED[name]))


def test_baselined_returns_of_gae_and_remax_use_the_critic_and_the_greedy_answer():
    values = torch.tensor([[1.0, 9.0], [-1.0, 9.0], [0.5, 9.0], [2.0, 9.0]])  # V at the first answer token counts
    gae = baselined_returns(PPOConfig(advantage_estimator="gae"), REWARDS, MASK, values=values)
    torch.testing.assert_close(gae, torch.tensor([-0.5, 4.0, 1.5, 2.0]))
    remax = baselined_returns(
        PPOConfig(advantage_estimator="remax"), REWARDS, MASK, greedy_scores=torch.tensor([1.0, 1.0, 3.0, 3.0])
    )
    torch.testing.assert_close(remax, torch.tensor([-0.5, 2.0, -1.0, 1.0]))
