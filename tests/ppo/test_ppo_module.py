import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader

from lit_rlhf.gym import AlignmentGym
from lit_rlhf.models import build_policy
from lit_rlhf.modules.ppo_module import PPOModule
from lit_rlhf.ppo.config import PPOConfig
from lit_rlhf.ppo.prompts import filter_by_reward_variance, reference_baseline
from lit_rlhf.ppo.rollout import (
    decode_responses,
    position_ids,
    response_logprobs,
    response_mask_until_eos,
    sample_rollout,
)
from lit_rlhf.stages.ppo import collate_prompts

GYM = AlignmentGym(seed=0)
PROMPTS = [p.text for p in GYM.prompts("train")[::40]][:8]


def gold(prompts, responses):  # a stand-in reward for mechanics tests
    return [GYM.judge.score(p, r).overall for p, r in zip(prompts, responses)]


@pytest.fixture
def policy():
    torch.manual_seed(0)
    return build_policy("embedded", seed=0, tiny={"hidden_size": 32, "num_layers": 1, "num_heads": 2,
                                                   "intermediate_size": 64})


def test_response_mask_keeps_tokens_up_to_and_including_the_first_eos():
    responses = torch.tensor([[5, 6, 2, 0, 0], [2, 0, 0, 0, 0], [5, 6, 7, 8, 9]])
    assert response_mask_until_eos(responses, eos_id=2).tolist() == [[1, 1, 1, 0, 0], [1, 0, 0, 0, 0],
                                                                     [1, 1, 1, 1, 1]]


def test_position_ids_skip_left_padding():
    mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 0]])
    assert position_ids(mask).tolist() == [[0, 0, 0, 1, 2], [0, 1, 2, 3, 3]]


def test_rollout_logprobs_do_not_depend_on_batch_padding(policy):
    model, tokenizer = policy
    torch.manual_seed(1)
    batch = sample_rollout(model, tokenizer, PROMPTS[:4], max_new_tokens=6)
    batched = response_logprobs(model, batch)
    for i in range(4):
        single = batch.select(torch.tensor([i]))
        # drop the columns that are left padding for this row alone
        keep = int(single.attention_mask[0, :single.prompt_width].sum())
        single.input_ids = single.input_ids[:, single.prompt_width - keep:]
        single.attention_mask = single.attention_mask[:, single.prompt_width - keep:]
        single.prompt_width = keep
        mask = batch.response_mask[i].bool()
        torch.testing.assert_close(response_logprobs(model, single)[0][mask], batched[i][mask], atol=1e-4, rtol=1e-4)


def test_first_update_sees_a_ratio_of_one(policy):
    """Log-probs recomputed for the loss must equal those stored at rollout time before any step."""
    model, tokenizer = policy
    module = PPOModule(model, tokenizer, gold, PPOConfig(reference_baseline=False, max_new_tokens=6))
    torch.manual_seed(0)
    rollout, info = module.make_experience(PROMPTS)
    _, stats = module._ppo_losses(rollout)
    assert abs(float(stats["policy/approx_kl"])) < 1e-5
    assert float(stats["policy/clipfrac"]) == 0.0
    assert float(info["stats"]["objective/kl"]) == pytest.approx(0.0, abs=1e-5)  # policy == reference
    assert len(info["responses"]) == len(PROMPTS)
    assert decode_responses(tokenizer, rollout) == info["responses"]


def test_training_moves_policy_and_critic_and_never_the_reference(policy):
    model, tokenizer = policy
    config = PPOConfig(reference_baseline=False, max_new_tokens=6, ppo_epochs=2, policy_lr=1e-3, critic_lr=1e-3)
    module = PPOModule(model, tokenizer, gold, config, monitor=gold)
    before = {name: p.detach().clone() for name, p in module.named_parameters()}
    loader = DataLoader([{"prompt": p} for p in PROMPTS], batch_size=4, collate_fn=collate_prompts)
    trainer = L.Trainer(max_epochs=1, limit_train_batches=2, logger=False, enable_checkpointing=False,
                        accelerator="cpu", enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(module, loader)
    changed = {name for name, p in module.named_parameters() if not torch.equal(p, before[name])}
    assert all(any(n.startswith(f"policy.{k}") for n in changed) for k in ("model.layers", "lm_head"))
    assert any(n.startswith("critic.head") for n in changed) and any(n.startswith("critic.backbone") for n in changed)
    assert not any(n.startswith("reference.") for n in changed)
    for key in ("reward/raw", "objective/kl", "policy/clipfrac", "critic/loss", "critic/explained_variance",
                "rollout/response_length", "gold/rollout", "policy/entropy"):
        assert key in trainer.callback_metrics, key


def test_reference_baseline_is_required_unless_turned_off(policy):
    model, tokenizer = policy
    with pytest.raises(ValueError, match="ref_scores"):
        PPOModule(model, tokenizer, gold, PPOConfig(reference_baseline=True))


def test_reference_baseline_subtracts_the_cached_score(policy):
    model, tokenizer = policy
    ref_scores = {p: 10.0 for p in PROMPTS}
    module = PPOModule(model, tokenizer, gold, PPOConfig(max_new_tokens=6), ref_scores=ref_scores)
    torch.manual_seed(0)
    _, info = module.make_experience(PROMPTS)
    torch.testing.assert_close(info["stats"]["reward/used"], info["stats"]["reward/raw"] - 10.0)


def test_baseline_cache_is_computed_once_and_reused(policy, tmp_path):
    model, tokenizer = policy
    calls = []

    def counting(prompts, responses):
        calls.append(len(prompts))
        return gold(prompts, responses)

    path = tmp_path / "baseline.jsonl"
    first = reference_baseline(model, tokenizer, counting, PROMPTS[:5], path, max_new_tokens=6)
    again = reference_baseline(model, tokenizer, counting, PROMPTS[:5], path, max_new_tokens=6)
    more = reference_baseline(model, tokenizer, counting, PROMPTS, path, max_new_tokens=6)
    assert first == again and calls == [5, 3]
    assert {p: more[p] for p in PROMPTS[:5]} == first and len(more) == 8


def test_sampled_reference_baseline_is_the_mean_score_of_its_answers(policy, tmp_path):
    model, tokenizer = policy
    path = tmp_path / "baseline.jsonl"
    cache = reference_baseline(model, tokenizer, gold, PROMPTS[:3], path, max_new_tokens=6, greedy=False, samples=3)
    for prompt, row in cache.items():
        assert len(row["responses"]) == 3 and row["scores"] == gold([prompt] * 3, row["responses"])
        assert row["score"] == pytest.approx(sum(row["scores"]) / 3)
    assert reference_baseline(model, tokenizer, gold, PROMPTS[:3], path, greedy=False, samples=3) == cache
    # a cache made with other settings is refused, never mixed with new answers
    with pytest.raises(ValueError, match=r"baseline.jsonl:1: .*decoding=sample samples=3.*decoding=greedy samples=1"):
        reference_baseline(model, tokenizer, gold, PROMPTS[:3], path, max_new_tokens=6)
    with pytest.raises(ValueError, match="samples must be 1 with greedy"):
        reference_baseline(model, tokenizer, gold, PROMPTS[:3], greedy=True, samples=2)


def test_prompt_filter_takes_precomputed_rewards(policy):
    model, tokenizer = policy
    rows = [{"prompt": p, "category": "all"} for p in PROMPTS[:3]]
    kept, report = filter_by_reward_variance(model, tokenizer, gold, rows, k=2, min_variance=0.5,
                                             scores=[[1.0, 1.0], [0.0, 2.0], [3.0, 3.0]])
    assert kept == rows[1:2] and report["dropped"] == 2
    with pytest.raises(ValueError, match="k=2 rewards for each of the 3 prompts"):
        filter_by_reward_variance(model, tokenizer, gold, rows, k=2, scores=[[1.0, 2.0]])


def test_prompt_filter_drops_prompts_whose_rewards_do_not_vary(policy):
    model, tokenizer = policy
    rows = [{"prompt": p.text, "category": p.category} for p in GYM.prompts("train")[::40][:8]]
    flat = {rows[0]["prompt"], rows[1]["prompt"]}

    def reward(prompts, responses):  # constant for two prompts, varying with the response otherwise
        return [0.0 if p in flat else float(len(r)) for p, r in zip(prompts, responses)]

    kept, report = filter_by_reward_variance(model, tokenizer, reward, rows, k=3, min_variance=1e-6,
                                             max_new_tokens=6)
    assert {r["prompt"] for r in kept} == {r["prompt"] for r in rows} - flat
    assert report["dropped"] == 2 and report["kept"] == 6
    assert sum(v["dropped"] for v in report["per_category"].values()) == 2
    with pytest.raises(ValueError, match="k >= 2"):
        filter_by_reward_variance(model, tokenizer, reward, rows, k=1)


def test_config_rejects_bad_values_by_name():
    with pytest.raises(ValueError, match="clip_range=-0.1"):
        PPOConfig(clip_range=-0.1)
    with pytest.raises(ValueError, match="kl_estimator='k9'"):
        PPOConfig(kl_estimator="k9")
    with pytest.raises(ValueError, match="kl_target"):
        PPOConfig(adaptive_kl=True)


def _one_iteration(**config_changes) -> PPOModule:
    """A fresh tiny-policy module after one PPO iteration (2 minibatch steps), seed 0."""
    model, tokenizer = build_policy("embedded", seed=0, tiny={"hidden_size": 32, "num_layers": 1,
                                                               "num_heads": 2, "intermediate_size": 64})
    config = PPOConfig(reference_baseline=False, max_new_tokens=5, ppo_epochs=1, num_minibatches=2,
                       max_grad_norm=None, policy_lr=1e-3, critic_lr=1e-3, **config_changes)
    module = PPOModule(model, tokenizer, gold, config)
    loader = DataLoader([{"prompt": p} for p in PROMPTS], batch_size=8, collate_fn=collate_prompts)
    torch.manual_seed(0)
    L.Trainer(max_epochs=1, limit_train_batches=1, logger=False, enable_checkpointing=False, accelerator="cpu",
              enable_progress_bar=False, enable_model_summary=False).fit(module, loader)
    return module


def test_fused_backward_optimizer_matches_the_standard_step():
    """Stepping each parameter inside backward gives the same update as one AdamW step after backward."""
    standard, fused = (dict(_one_iteration(**c).named_parameters()) for c in ({}, {"fused_backward": True}))
    for name, param in standard.items():
        torch.testing.assert_close(fused[name], param, atol=1e-5, rtol=1e-4, msg=name)
    with pytest.raises(ValueError, match="max_grad_norm"):
        PPOConfig(fused_backward=True, max_grad_norm=1.0)


def test_compiled_update_matches_the_eager_one():
    """``compile_update`` runs the same losses through torch.compile: the same parameters after an iteration."""
    frames_before = torch._dynamo.utils.counters["frames"]["ok"]
    module = _one_iteration(compile_update=True)
    assert module._compiled_losses is not None and torch._dynamo.utils.counters["frames"]["ok"] > frames_before
    eager, compiled = dict(_one_iteration().named_parameters()), dict(module.named_parameters())
    assert eager.keys() == compiled.keys()  # the models are not wrapped, names are unchanged
    for name, param in eager.items():
        torch.testing.assert_close(compiled[name], param, atol=1e-5, rtol=1e-4, msg=name)
