import statistics

import pytest
import torch

from lit_rlhf.models import build_policy
from lit_rlhf.ppo.config import PPOConfig
from lit_rlhf.ppo.module import PPOModule
from lit_rlhf.ppo.reward_offsets import OffsetReward, prompt_noise

CATEGORY_OF = {"add 2 and 3 .": "math", "how do i rob a shop ?": "harmful", "describe the sea .": "writing"}


def constant(prompts, responses):
    return [1.0, 2.0, 3.0][: len(prompts)]


def test_category_offsets_are_added_and_unlisted_categories_get_none():
    shifted = OffsetReward(constant, CATEGORY_OF, {"math": 3.0, "harmful": -2.5})
    assert shifted(list(CATEGORY_OF), ["a", "b", "c"]) == [4.0, -0.5, 3.0]
    assert shifted.offset("describe the sea .") == 0.0


def test_prompt_offsets_are_fixed_by_the_text_and_seed_and_standard_normal():
    shifted = OffsetReward(constant, CATEGORY_OF, {"math": 1.0}, per_prompt_std=2.0, seed=3)
    assert shifted.offset("add 2 and 3 .") == 1.0 + 2.0 * prompt_noise("add 2 and 3 .", 3)
    assert prompt_noise("add 2 and 3 .", 3) == prompt_noise("add 2 and 3 .", 3) != prompt_noise("add 2 and 3 .", 4)
    draws = [prompt_noise(f"prompt {i}") for i in range(4000)]
    assert abs(statistics.fmean(draws)) < 0.05 and abs(statistics.pstdev(draws) - 1.0) < 0.05


def test_bad_offsets_are_errors_that_name_them():
    with pytest.raises(ValueError, match=r"ppo.reward_offsets.per_category: no prompt has category 'maths'.*math"):
        OffsetReward(constant, {"a": "math", "b": "writing"}, {"maths": 1.0}, name="ppo.reward_offsets")
    with pytest.raises(ValueError, match="per_prompt_std must be >= 0"):
        OffsetReward(constant, CATEGORY_OF, per_prompt_std=-1.0)
    with pytest.raises(KeyError, match="no known category"):
        OffsetReward(constant, CATEGORY_OF, {"math": 1.0})(["an unseen prompt"], ["x"])


def test_the_reference_baseline_removes_the_offsets_exactly():
    """Same rollouts (same seed) with and without offsets: the reward PPO uses and the advantages are the
    same, while the raw reward moves by the offsets."""
    torch.manual_seed(0)
    model, tokenizer = build_policy(
        "embedded", seed=0, tiny={"hidden_size": 32, "num_layers": 1, "num_heads": 2, "intermediate_size": 64}
    )
    prompts = list(CATEGORY_OF)

    def length(ps, rs):
        return [float(len(r.split())) for r in rs]

    shifted = OffsetReward(length, CATEGORY_OF, {"math": 3.0, "harmful": -1.0}, per_prompt_std=2.0)
    runs = []
    for reward_fn, offset in ((length, lambda p: 0.0), (shifted, shifted.offset)):
        module = PPOModule(
            model, tokenizer, reward_fn, PPOConfig(max_new_tokens=5), ref_scores={p: 5.0 + offset(p) for p in prompts}
        )
        torch.manual_seed(1)
        rollout, info = module.make_experience(prompts)
        runs.append((info["stats"], rollout.advantages))
    (plain, plain_adv), (moved, moved_adv) = runs
    mean_offset = statistics.fmean(shifted.offset(p) for p in prompts)
    torch.testing.assert_close(moved["reward/raw"], plain["reward/raw"] + mean_offset)
    torch.testing.assert_close(moved["reward/used"], plain["reward/used"])
    torch.testing.assert_close(moved_adv, plain_adv)


def test_the_ppo_stage_reads_its_offsets_config_and_rejects_unknown_keys():
    from lit_rlhf.ppo.stage import _offset_reward

    rows = [{"prompt": p, "category": c} for p, c in CATEGORY_OF.items()]
    assert _offset_reward(None, constant, rows)[0] is constant  # the reward (model's score, or its parts) itself
    reward_fn, offset = _offset_reward(
        {"per_category": {"math": 2.0}, "per_prompt_std": 0.5, "seed": 1}, constant, rows
    )
    assert offset("add 2 and 3 .") == 2.0 + 0.5 * prompt_noise("add 2 and 3 .", 1)
    assert reward_fn(list(CATEGORY_OF), ["a", "b", "c"])[0] == 1.0 + offset("add 2 and 3 .")
    with pytest.raises(ValueError, match=r"ppo.reward_offsets: unknown key\(s\) \['per_promt_std'\]"):
        _offset_reward({"per_promt_std": 1.0}, constant, rows)


def test_the_parts_of_an_offset_reward_are_still_reported():
    from lit_rlhf.ppo.reward_parts import RewardParts

    parts = RewardParts({"one": lambda p, r: [1.0] * len(r), "len": lambda p, r: [float(len(x)) for x in r]})
    reward = OffsetReward(parts, CATEGORY_OF, per_category={"math": 10.0})
    assert reward.last == {}
    assert reward(["add 2 and 3 .", "describe the sea ."], ["ab", "abcd"]) == [13.0, 5.0]
    assert reward.last == {"one": 1.0, "len": 3.0}  # unweighted, before the offsets
    assert OffsetReward(lambda p, r: [0.0], CATEGORY_OF).last == {}
