import functools
import math
from types import SimpleNamespace

import lightning as L
import pytest
import torch
from naive_reference import (
    DECODERS,
    hand_rollout,
    naive_response_logprobs,
    naive_response_values,
    tiny_decoder,
)
from torch.utils.data import DataLoader

from lit_rlhf.data.errors import ConfigError
from lit_rlhf.gym import AlignmentGym
from lit_rlhf.models import build_policy
from lit_rlhf.ppo.config import PPOConfig
from lit_rlhf.ppo.module import PPOModule, category_means
from lit_rlhf.ppo.rl_prompts import filter_by_reward_variance, reference_baseline
from lit_rlhf.ppo.rollout import (
    Rollout,
    decode_responses,
    minibatch_indices,
    position_ids,
    response_logprobs,
    response_mask_until_eos,
    response_values,
)
from lit_rlhf.ppo.stage import collate_prompts
from lit_rlhf.ppo.value_model import ValueModel

GYM = AlignmentGym(seed=0)
PROMPTS = [p.text for p in GYM.prompts("train")[::40]][:8]


def gold(prompts, responses):  # a stand-in reward for mechanics tests
    return [GYM.judge.score(p, r).overall for p, r in zip(prompts, responses)]


def quiet_trainer(limit_train_batches: int | None = None) -> L.Trainer:
    """One CPU epoch (of ``limit_train_batches`` iterations), with no logger, checkpoint or progress bar."""
    return L.Trainer(
        max_epochs=1,
        limit_train_batches=limit_train_batches,
        logger=False,
        enable_checkpointing=False,
        accelerator="cpu",
        enable_progress_bar=False,
        enable_model_summary=False,
    )


@pytest.fixture
def policy():
    torch.manual_seed(0)
    return build_policy(
        "embedded", seed=0, tiny={"hidden_size": 32, "num_layers": 1, "num_heads": 2, "intermediate_size": 64}
    )


def test_response_mask_keeps_tokens_up_to_and_including_the_first_eos():
    responses = torch.tensor([[5, 6, 2, 0, 0], [2, 0, 0, 0, 0], [5, 6, 7, 8, 9]])
    assert response_mask_until_eos(responses, eos_id=2).tolist() == [[1, 1, 1, 0, 0], [1, 0, 0, 0, 0], [1, 1, 1, 1, 1]]


def test_position_ids_skip_left_padding():
    mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 0]])
    assert position_ids(mask).tolist() == [[0, 0, 0, 1, 2], [0, 1, 2, 3, 3]]


def padded_rollout(tokenizer) -> Rollout:
    """Four rows with left padding (prompts of different lengths) and right padding (responses stopped by EOS)."""
    eos = tokenizer.eos_token_id
    words = [tokenizer.convert_tokens_to_ids(w) for w in ("the", "answer", "is", "5", ".", "i", "am", "sorry")]
    responses = [words[:3] + [eos], words[3:8] + words[:2], [eos], words[5:7]]
    rollout = hand_rollout(tokenizer, PROMPTS[:4], responses)
    assert len(set(rollout.attention_mask[:, : rollout.prompt_width].sum(-1).tolist())) > 1
    assert rollout.response_mask.sum(-1).tolist() == [4, 7, 1, 2]
    return rollout


@pytest.mark.parametrize("decoder", DECODERS)
def test_rollout_logprobs_equal_a_forward_over_each_sequence_alone(decoder):
    model, tokenizer = tiny_decoder(decoder)
    rollout = padded_rollout(tokenizer)
    got = response_logprobs(model.eval(), rollout, temperature=0.7)
    for row, expected in enumerate(naive_response_logprobs(model, rollout, temperature=0.7)):
        torch.testing.assert_close(got[row, : expected.numel()].double(), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("decoder", DECODERS)
def test_response_values_are_the_values_of_the_state_before_each_response_token(decoder):
    model, tokenizer = tiny_decoder(decoder)
    critic = ValueModel.from_policy(model).eval()
    torch.nn.init.normal_(critic.head.weight)  # the zero head of a fresh critic would match anything
    rollout = padded_rollout(tokenizer)
    got = response_values(critic, rollout)
    assert got.shape == rollout.response_mask.shape
    for row, expected in enumerate(naive_response_values(critic, rollout)):
        torch.testing.assert_close(got[row, : expected.numel()], expected, atol=1e-5, rtol=1e-5)


def test_rollout_is_scored_without_dropout_and_the_update_runs_in_the_modules_mode():
    model, tokenizer = tiny_decoder("gpt2", dropout=0.1)
    module = PPOModule(model, tokenizer, gold, PPOConfig(reference_baseline=False, max_new_tokens=6))
    torch.nn.init.normal_(module.critic.head.weight)
    module.train()  # as under fit: the reference and the critic too
    torch.manual_seed(0)
    rollout, info = module.make_experience(PROMPTS)
    assert float(info["stats"]["objective/kl"]) == 0.0  # the policy's weights are the reference's
    assert module.policy.training and module.critic.training and module.reference.training  # modes put back
    for row, expected in enumerate(naive_response_logprobs(model, rollout)):
        torch.testing.assert_close(rollout.logprobs[row, : expected.numel()].double(), expected, atol=1e-5, rtol=1e-5)
    for row, expected in enumerate(naive_response_values(module.critic, rollout)):
        torch.testing.assert_close(rollout.values[row, : expected.numel()], expected, atol=1e-5, rtol=1e-5)
    module.eval()
    assert float(module._ppo_losses(rollout)[1]["policy/approx_kl"]) == pytest.approx(0.0, abs=1e-7)
    module.train()  # the update as configured: with the model's dropout
    assert float(module._ppo_losses(rollout)[1]["policy/approx_kl"]) > 1e-5


class FixedLogits(torch.nn.Module):
    """A causal LM whose next-token logits are ``row`` at every position."""

    def __init__(self, row: torch.Tensor):
        super().__init__()
        self.row = torch.nn.Parameter(row)

    def forward(self, input_ids, attention_mask, position_ids, use_cache):
        return SimpleNamespace(logits=self.row.expand(*input_ids.shape, -1))


class ZeroCritic(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.bias = torch.nn.Parameter(torch.zeros(()))

    def forward(self, input_ids, attention_mask, position_ids=None):
        return self.bias.expand(input_ids.shape)


def test_logged_entropy_is_that_of_the_temperature_scaled_distribution():
    # logits (2 ln 2, 0, 0) at temperature 2: probabilities (1/2, 1/4, 1/4), entropy 1.5 ln 2
    policy = FixedLogits(torch.tensor([2 * math.log(2), 0.0, 0.0]))
    module = PPOModule(policy, None, gold, PPOConfig(reference_baseline=False, temperature=2.0), critic=ZeroCritic())
    zeros = torch.zeros(2, 3)
    rollout = Rollout(
        torch.zeros(2, 4, dtype=torch.long),
        torch.ones(2, 4, dtype=torch.long),
        torch.ones(2, 3, dtype=torch.long),
        prompt_width=1,
        logprobs=zeros,
        ref_logprobs=zeros,
        values=zeros,
        advantages=zeros,
        returns=zeros,
    )
    _, stats = module._ppo_losses(rollout)
    assert float(stats["policy/entropy"]) == pytest.approx(1.5 * math.log(2), rel=1e-6)


@pytest.mark.parametrize(("rows", "minibatches", "sizes"), [(7, 2, [4, 3]), (6, 4, [2, 2, 1, 1]), (5, 5, [1] * 5)])
def test_minibatches_are_exactly_as_many_as_configured_and_nearly_equal(rows, minibatches, sizes):
    order = torch.randperm(rows)
    chunks = minibatch_indices(order, minibatches)
    assert [c.numel() for c in chunks] == sizes
    assert torch.equal(torch.cat(chunks), order)


def test_more_minibatches_than_rollouts_is_refused():
    with pytest.raises(ValueError, match=r"num_minibatches=4 must be between 1 and the batch's 3 rollouts"):
        minibatch_indices(torch.arange(3), 4)


@pytest.mark.parametrize(("prompts", "minibatches", "sizes"), [(7, 2, [4, 3]), (6, 4, [2, 2, 1, 1])])
def test_each_ppo_epoch_takes_num_minibatches_optimizer_steps(policy, prompts, minibatches, sizes):
    model, tokenizer = policy
    config = PPOConfig(reference_baseline=False, max_new_tokens=4, ppo_epochs=2, num_minibatches=minibatches)
    module = PPOModule(model, tokenizer, gold, config)
    seen, losses = [], module._update_losses
    module._update_losses = lambda mb: seen.append(mb.input_ids.size(0)) or losses(mb)
    loader = DataLoader([{"prompt": p} for p in PROMPTS[:prompts]], batch_size=prompts, collate_fn=collate_prompts)
    trainer = quiet_trainer()
    trainer.fit(module, loader)
    assert seen == sizes * 2
    assert trainer.global_step == 2 * minibatches  # optimizer steps


def test_ntp_coef_without_ntp_batches_is_refused(policy):
    model, tokenizer = policy
    with pytest.raises(ValueError, match="ntp_coef=0.1 > 0 needs ntp_batches"):
        PPOModule(model, tokenizer, gold, PPOConfig(reference_baseline=False, ntp_coef=0.1))


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
    config = PPOConfig(reference_baseline=False, max_new_tokens=6, ppo_epochs=2)
    module = PPOModule(
        model,
        tokenizer,
        gold,
        config,
        monitor=gold,
        optimizer=functools.partial(torch.optim.AdamW, lr=1e-3),
        param_groups={},
    )
    before = {name: p.detach().clone() for name, p in module.named_parameters()}
    rows = [{"prompt": p, "category": "odd" if i % 2 else "even"} for i, p in enumerate(PROMPTS)]
    loader = DataLoader(rows, batch_size=4, collate_fn=collate_prompts)
    trainer = quiet_trainer(2)
    trainer.fit(module, loader)
    changed = {name for name, p in module.named_parameters() if not torch.equal(p, before[name])}
    assert all(any(n.startswith(f"policy.{k}") for n in changed) for k in ("model.layers", "lm_head"))
    assert any(n.startswith("critic.head") for n in changed) and any(n.startswith("critic.backbone") for n in changed)
    assert not any(n.startswith("reference.") for n in changed)
    for key in (
        "reward/raw",
        "objective/kl",
        "policy/clipfrac",
        "critic/loss",
        "critic/explained_variance",
        "rollout/response_length",
        "gold/rollout",
        "policy/entropy",
        "reward/raw/odd",
        "gold/rollout/even",
        "rollout/response_length/odd",
    ):
        assert key in trainer.callback_metrics, key


def test_category_means_average_each_category_apart():
    got = category_means("reward/raw", [1.0, 2.0, 4.0, -1.0], ["math", "writing", "math", "writing"])
    assert got == {"reward/raw/math": 2.5, "reward/raw/writing": 0.5}


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
    kept, report = filter_by_reward_variance(
        model, tokenizer, gold, rows, k=2, min_variance=0.5, scores=[[1.0, 1.0], [0.0, 2.0], [3.0, 3.0]]
    )
    assert kept == rows[1:2] and report["dropped"] == 2
    with pytest.raises(ValueError, match="k=2 rewards for each of the 3 prompts"):
        filter_by_reward_variance(model, tokenizer, gold, rows, k=2, scores=[[1.0, 2.0]])


def test_prompt_filter_drops_prompts_whose_rewards_do_not_vary(policy):
    model, tokenizer = policy
    rows = [{"prompt": p.text, "category": p.category} for p in GYM.prompts("train")[::40][:8]]
    flat = {rows[0]["prompt"], rows[1]["prompt"]}

    def reward(prompts, responses):  # constant for two prompts, varying with the response otherwise
        return [0.0 if p in flat else float(len(r)) for p, r in zip(prompts, responses)]

    kept, report = filter_by_reward_variance(model, tokenizer, reward, rows, k=3, min_variance=1e-6, max_new_tokens=6)
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


def _tiny_policy(lora: dict | None = None):
    """The embedded policy at its smallest, seed 0, with LoRA adapters when ``lora`` is given."""
    return build_policy(
        "embedded",
        seed=0,
        tiny={"hidden_size": 32, "num_layers": 1, "num_heads": 2, "intermediate_size": 64},
        lora=lora,
    )


def _one_iteration(lora: dict | None = None, **config_changes) -> PPOModule:
    """A fresh tiny-policy module after one PPO iteration (2 minibatch steps), seed 0."""
    model, tokenizer = _tiny_policy(lora)
    config = PPOConfig(
        reference_baseline=False,
        max_new_tokens=5,
        ppo_epochs=1,
        num_minibatches=2,
        max_grad_norm=None,
        **config_changes,
    )
    module = PPOModule(
        model, tokenizer, gold, config, optimizer=functools.partial(torch.optim.AdamW, lr=1e-3), param_groups={}
    )
    loader = DataLoader([{"prompt": p} for p in PROMPTS], batch_size=8, collate_fn=collate_prompts)
    torch.manual_seed(0)
    quiet_trainer(1).fit(module, loader)
    return module


@pytest.mark.parametrize("lora", [None, {"r": 4, "dropout": 0.0}], ids=["full", "lora"])
def test_fused_backward_optimizer_matches_the_standard_step(lora):
    """Stepping each parameter inside backward gives the same update as one AdamW step after backward, with
    every parameter training or only LoRA adapters."""
    if lora:
        pytest.importorskip("peft")
    standard, fused = (dict(_one_iteration(lora, **c).named_parameters()) for c in ({}, {"fused_backward": True}))
    for name, param in standard.items():
        torch.testing.assert_close(fused[name], param, atol=1e-5, rtol=1e-4, msg=name)
    with pytest.raises(ValueError, match="max_grad_norm"):
        PPOConfig(fused_backward=True, max_grad_norm=1.0)


@pytest.mark.slow  # compiles the update
def test_compiled_update_matches_the_eager_one():
    """``compile_update`` runs the same losses through torch.compile: the same parameters after an iteration."""
    frames_before = torch._dynamo.utils.counters["frames"]["ok"]
    module = _one_iteration(compile_update=True)
    assert module._compiled_losses is not None and torch._dynamo.utils.counters["frames"]["ok"] > frames_before
    eager, compiled = dict(_one_iteration().named_parameters()), dict(module.named_parameters())
    assert eager.keys() == compiled.keys()  # the models are not wrapped, names are unchanged
    for name, param in eager.items():
        torch.testing.assert_close(compiled[name], param, atol=1e-5, rtol=1e-4, msg=name)


@pytest.mark.parametrize(
    "estimator, extra",
    [
        ("grpo", {"samples_per_prompt": 2, "kl_penalty": "loss", "kl_estimator": "k3", "loss_aggregation": "sequence"}),
        ("rloo", {"samples_per_prompt": 2}),
        ("reinforce_pp", {}),
        ("remax", {}),
    ],
)
def test_critic_free_estimators_train_the_policy_alone(policy, estimator, extra):
    model, tokenizer = policy
    config = PPOConfig(advantage_estimator=estimator, reference_baseline=False, max_new_tokens=6, ppo_epochs=1, **extra)
    module = PPOModule(model, tokenizer, gold, config, optimizer=functools.partial(torch.optim.AdamW, lr=1e-3))
    assert module.critic is None
    before = {name: p.detach().clone() for name, p in module.named_parameters()}
    loader = DataLoader([{"prompt": p} for p in PROMPTS], batch_size=4, collate_fn=collate_prompts)
    trainer = quiet_trainer(1)
    with pytest.warns(UserWarning, match="param_groups.critic is unused"):  # the default groups name a critic
        trainer.fit(module, loader)
    changed = {name for name, p in module.named_parameters() if not torch.equal(p, before[name])}
    assert any(n.startswith("policy.") for n in changed) and not any(n.startswith("reference.") for n in changed)
    assert not any(k.startswith("critic/") for k in trainer.callback_metrics)
    assert len(module.last_rollout["prompts"]) == 4 * config.samples_per_prompt
    assert ("policy/kl_loss" in trainer.callback_metrics) == (config.kl_penalty == "loss")


def test_a_critic_free_estimator_refuses_a_critic(policy):
    model, tokenizer = policy
    with pytest.raises(ValueError, match="trains no critic"):
        PPOModule(
            model,
            tokenizer,
            gold,
            PPOConfig(advantage_estimator="rloo", samples_per_prompt=2, reference_baseline=False),
            critic=ValueModel.from_policy(model),
        )


@pytest.mark.parametrize(
    "bad",
    [
        {"advantage_estimator": "vtrace"},
        {"advantage_estimator": "grpo"},
        {"kl_penalty": "both"},
        {"loss_aggregation": "row"},
    ],
)
def test_bad_estimator_settings_are_named(bad):
    with pytest.raises(ValueError, match=next(iter(bad)) if "grpo" not in bad.values() else "samples_per_prompt"):
        PPOConfig(**bad)


def test_remax_baseline_is_the_greedy_answers_score(policy):
    model, tokenizer = policy
    config = PPOConfig(advantage_estimator="remax", reference_baseline=False, max_new_tokens=6, kl_coef=0.0)
    module = PPOModule(model, tokenizer, gold, config)
    greedy = module._greedy_scores(PROMPTS[:2])
    again = module._greedy_scores(PROMPTS[:2])  # greedy: the same answers again
    torch.testing.assert_close(greedy, again)
    torch.manual_seed(0)
    rollout, info = module.make_experience(PROMPTS[:2])
    expected = info["raw"] - greedy
    got = rollout.advantages[torch.arange(2), rollout.response_mask.sum(-1) - 1]
    torch.testing.assert_close(got, expected)


def test_logged_reward_parts_are_the_sampled_answers_also_under_remax(policy):
    from lit_rlhf.ppo.reward_parts import RewardParts

    model, tokenizer = policy
    words = lambda ps, rs: [float(len(r.split())) for r in rs]  # noqa: E731
    reward = RewardParts({"gold": gold, "words": words}, {"words": 0.0})
    config = PPOConfig(advantage_estimator="remax", reference_baseline=False, max_new_tokens=6)
    module = PPOModule(model, tokenizer, reward, config)
    torch.manual_seed(0)
    _, info = module.make_experience(PROMPTS[:4])
    sampled_words = sum(len(r.split()) for r in info["responses"]) / 4
    assert float(info["stats"]["reward/part/words"]) == pytest.approx(sampled_words)
    torch.testing.assert_close(info["raw"], torch.tensor(gold(info["prompts"], info["responses"])))


@pytest.mark.parametrize("lora", [None, {"r": 4, "dropout": 0.0}], ids=["full", "lora"])
def test_ntp_against_the_reference_holds_the_policy_where_it_started(lora):
    """``ntp_target=reference``: on the NTP batch, KL of the reference's next-token distribution to the policy's;
    0 while they are equal, positive once the policy moves, with a gradient for the policy only."""
    from lit_rlhf.data.ntp import IndexedBatches
    from lit_rlhf.sft.data import SFTCollator, SFTDataset

    model, tokenizer = _tiny_policy(lora)
    ntp = IndexedBatches(
        SFTDataset(GYM.demonstrations("train", 1)[:8], tokenizer, 64), SFTCollator(tokenizer.pad_token_id), 4, seed=0
    )
    config = PPOConfig(reference_baseline=False, ntp_coef=0.1, ntp_target="reference")
    module = PPOModule(model, tokenizer, gold, config, ntp_batches=ntp).eval()  # no dropout: equal means equal
    assert module._ntp_loss().item() == pytest.approx(0.0, abs=1e-6)
    with torch.no_grad():
        for p in (p for p in module.policy.parameters() if p.requires_grad):
            p.add_(0.05 * torch.randn_like(p))
    module.ntp_step = 0  # the same batch again
    loss = module._ntp_loss()
    loss.backward()
    assert loss.item() > 1e-4
    trained = [p for p in module.policy.parameters() if p.requires_grad]
    assert all(p.grad is not None for p in trained) and any(p.grad.abs().sum() > 0 for p in trained)
    if lora is None:  # a frozen copy; under LoRA the reference is the same base with the adapters off
        assert all(p.grad is None for p in module.reference.parameters())


def test_an_unknown_ntp_target_is_refused_by_name():
    with pytest.raises(ConfigError, match="ntp_target='demos'"):
        PPOConfig(ntp_target="demos")
