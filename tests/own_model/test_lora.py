"""LoRA adapters and gradient checkpointing as model options, on a second architecture (Qwen2 with its own
BPE tokenizer): every stage trains only the adapters, the reference is the base with them off, and every
checkpoint loads merged with plain transformers and as adapters with peft, giving the same outputs."""

from __future__ import annotations

import json

import pytest
import torch

from lit_rlhf import build_policy, compose, train

from .conftest import QUICK, SHRINK, stage_inputs

peft = pytest.importorskip("peft", reason='LoRA needs the lora extra: pip install -e ".[lora]"')

MEMORY = ["model.lora={r: 4, alpha: 8, dropout: 0.0}", "model.gradient_checkpointing=true"]


def _ids(tokenizer, text: str = "Describe the moon in one sentence.") -> torch.Tensor:
    return torch.tensor([tokenizer(text)["input_ids"]])


# What the LoRA runs change beyond the adapters: higher rates, so that a short run moves the adapters; no length
# balancing or prompt filter for the barely trained reward model; a critic from the policy (with adapters).
LORA_RUNS = {
    "sft": ["module.optimizer.lr=1e-2"],
    "reward_model": ["data.length_balance=null"],
    "ppo": ["ppo.prompt_filter.enabled=false", "ppo.critic_init=policy", "module.optimizer.lr=1e-2"],
    "dpo": ["module.optimizer.lr=1e-2"],
}


@pytest.fixture(scope="module")
def lora_runs(own_files, tmp_path_factory):
    art = tmp_path_factory.mktemp("lora_artifacts")
    for stage, changes in LORA_RUNS.items():
        train(
            compose(
                [
                    f"experiment={stage}",
                    *stage_inputs(stage, own_files, art),
                    *SHRINK[stage],
                    *changes,
                    f"paths.artifacts={art}",
                    *QUICK,
                    *MEMORY,
                ]
            )
        )
    return art


@pytest.mark.parametrize("stage", ["sft", "ppo", "dpo"])
def test_a_lora_policy_checkpoint_loads_merged_in_plain_transformers_and_as_adapters(lora_runs, own_files, stage):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    checkpoint = lora_runs / stage / "checkpoint"
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    merged = AutoModelForCausalLM.from_pretrained(checkpoint).eval()
    base_source = own_files["base"] if stage == "sft" else lora_runs / "sft" / "checkpoint"
    adapted = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(base_source), checkpoint / "adapter"
    ).eval()
    base = AutoModelForCausalLM.from_pretrained(base_source).eval()
    ids = _ids(tokenizer)
    with torch.no_grad():
        merged_logits, adapted_logits, base_logits = (m(ids).logits for m in (merged, adapted, base))
    torch.testing.assert_close(merged_logits, adapted_logits, atol=1e-4, rtol=1e-4)
    assert not torch.allclose(merged_logits, base_logits, atol=1e-4)  # the adapters learned something


def test_a_lora_reward_model_loads_merged_and_scores_alike(lora_runs):
    from lit_rlhf import RewardModel

    checkpoint = lora_runs / "reward_model" / "checkpoint"
    assert (checkpoint / "adapter" / "adapter_config.json").exists()
    scores = RewardModel.load(checkpoint).score(["Is rain nice?"] * 2, ["Yes, often.", "no"])
    assert len(scores) == 2 and scores[0] != scores[1]


def test_only_adapters_and_heads_train_and_the_reference_is_the_base(own_files):
    from lit_rlhf import PPOConfig, PPOModule
    from lit_rlhf.models.adapters import AdaptersOff

    policy, tokenizer = build_policy(str(own_files["base"]), lora={"r": 4, "dropout": 0.0})
    trainable = {n for n, p in policy.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    module = PPOModule(policy, tokenizer, lambda ps, rs: [0.0] * len(ps), PPOConfig(reference_baseline=False))
    assert isinstance(module.reference, AdaptersOff)
    assert not any(n.startswith("reference") for n, _ in module.named_parameters())  # no second copy
    with torch.no_grad():  # adapters start at zero: policy and reference agree, then differ once B moves
        ids = _ids(tokenizer)
        torch.testing.assert_close(module.policy(ids).logits, module.reference(ids).logits)
        for name, param in policy.named_parameters():
            if "lora_B" in name:
                param.add_(0.5)
        assert not torch.allclose(module.policy(ids).logits, module.reference(ids).logits)
        base = build_policy(str(own_files["base"]))[0]
        torch.testing.assert_close(module.reference(ids).logits, base(ids).logits)


def test_gradient_checkpointing_gives_the_same_gradients(own_files):
    ids = None
    grads = []
    for checkpointing in (False, True):
        model, tokenizer = build_policy(str(own_files["base"]), gradient_checkpointing=checkpointing)
        ids = _ids(tokenizer)
        model.train()
        model(ids, labels=ids).loss.backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
        assert model.is_gradient_checkpointing is checkpointing
    assert grads[0].keys() == grads[1].keys()
    for name in grads[0]:
        torch.testing.assert_close(grads[0][name], grads[1][name], atol=1e-6, rtol=1e-5)


def test_lora_settings_are_checked(own_files):
    from lit_rlhf.data.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown key"):
        build_policy(str(own_files["base"]), lora={"rank": 4})
    with pytest.raises(ConfigError, match="r must be"):
        build_policy(str(own_files["base"]), lora={"r": 0})


def test_lora_stages_report_their_results(lora_runs):
    for stage in ("sft", "reward_model", "ppo", "dpo"):
        assert json.loads((lora_runs / stage / "results.json").read_text())["checkpoint"]


def test_lora_under_fsdp2_is_refused_with_a_clear_error(own_files):
    from lit_rlhf.data.errors import ConfigError
    from lit_rlhf.systems.strategies import FSDP2Strategy

    policy, _ = build_policy(str(own_files["base"]), lora={"r": 4})
    with pytest.raises(ConfigError, match="model.lora under strategy=fsdp2"):
        FSDP2Strategy(block_classes="Qwen2DecoderLayer").shard_models(policy)


def test_ppo_with_a_bf16_reward_model_kept_on_the_cpu(lora_runs, own_files, tmp_path):
    """The frozen reward model in bf16 (half its memory); the critic built from it trains in the policy's dtype."""
    art = lora_runs
    summary = train(
        compose(
            [
                "experiment=ppo",
                f"model.source={art}/sft/checkpoint",
                f"ppo.reward_model={art}/reward_model/checkpoint",
                f"ppo.prompts.path={own_files['prompts']}",
                "ppo.prompts_per_iteration=4",
                "ppo.prompt_filter.enabled=false",
                "module.config.max_new_tokens=6",
                "module.config.ppo_epochs=1",
                "ppo.eval.samples_per_prompt=1",
                "ppo.reward_model_dtype=bfloat16",
                "ppo.reward_model_device=cpu",
                f"paths.artifacts={tmp_path}",
                *QUICK,
            ]
        )
    )
    assert summary["vs_start"]["judge"] == "reward_model"
    assert "critic/loss" in summary["train_metrics"]


def test_a_critic_from_a_bf16_reward_model_trains_in_the_policys_dtype(lora_runs):
    from lit_rlhf import RewardModel
    from lit_rlhf.ppo.stage import _critic

    policy, _ = build_policy(str(lora_runs / "sft" / "checkpoint"))
    reward_model = RewardModel.load(lora_runs / "reward_model" / "checkpoint", dtype="bfloat16")
    assert next(reward_model.model.parameters()).dtype == torch.bfloat16
    assert {p.dtype for p in _critic("reward_model", policy, reward_model).parameters()} == {torch.float32}


# --- the critic as a second adapter on the policy's base (ppo.critic_init=shared) ---------------------------------


def test_a_shared_critic_is_an_adapter_and_a_head_on_the_policys_own_base(own_files):
    from lit_rlhf import PPOConfig, PPOModule
    from lit_rlhf.ppo.value_model import SharedBaseCritic
    from lit_rlhf.systems.adamw import actor_critic_param_groups

    policy, tokenizer = build_policy(str(own_files["base"]), lora={"r": 4, "dropout": 0.0})
    policy_size = sum(p.numel() for p in policy.parameters())
    critic = SharedBaseCritic(policy)
    module = PPOModule(
        policy, tokenizer, lambda ps, rs: [0.0] * len(ps), PPOConfig(reference_baseline=False), critic=critic
    )
    assert [n for n, _ in critic.named_parameters()] == ["head.weight", "head.bias"]  # the base is not copied
    adapter = sum(p.numel() for p in critic.parameters_in_policy())
    assert sum(p.numel() for p in module.parameters()) == policy_size + adapter + policy.config.hidden_size + 1
    groups = {g["name"]: g["params"] for g in actor_critic_param_groups(policy, critic)}
    names = {id(p): n for n, p in policy.named_parameters()}
    assert all(".default." in names[id(p)] for p in groups["policy"])
    assert {id(p) for p in groups["critic"]} == {id(p) for p in [*critic.parameters_in_policy(), *critic.parameters()]}

    ids = _ids(tokenizer)
    mask = torch.ones_like(ids)
    with torch.no_grad():
        logits = policy(ids).logits
        assert torch.equal(critic(ids, mask), torch.zeros(ids.shape))  # a zero head: values start at 0
        for parameter in critic.parameters_in_policy():
            parameter.add_(0.3)
        critic.head.weight.fill_(0.1)
        torch.testing.assert_close(policy(ids).logits, logits)  # the critic's adapter leaves the policy alone
        with policy.disable_adapter():
            base = critic.head(policy.get_base_model().base_model(ids).last_hidden_state).squeeze(-1)
        assert not torch.allclose(critic(ids, mask), base)  # its own adapter is in use
        module.reference(ids)  # peft freezes an adapter it does not use when the base alone has run
    loss = policy(ids).logits.pow(2).mean() + critic(ids, mask).pow(2).mean()
    loss.backward()  # one backward reaches both adapters and the head
    for name, parameter in policy.named_parameters():
        if "lora_B" in name:
            assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name
    assert critic.head.weight.grad.abs().sum() > 0 and policy.active_adapter == "default"


def test_a_shared_critic_needs_a_lora_policy(own_files):
    from lit_rlhf.data.errors import ConfigError
    from lit_rlhf.ppo.value_model import SharedBaseCritic

    with pytest.raises(ConfigError, match="critic_init=shared needs a LoRA policy"):
        SharedBaseCritic(build_policy(str(own_files["base"]))[0])


def test_under_gradient_checkpointing_a_shared_critic_gets_the_same_gradients(own_files):
    """Backward recomputes each block under the adapter its forward used, not the one in use at backward."""
    from lit_rlhf.ppo.value_model import SharedBaseCritic

    grads = []
    for checkpointing in (False, True):
        policy, tokenizer = build_policy(
            str(own_files["base"]), lora={"r": 4, "dropout": 0.0}, gradient_checkpointing=checkpointing
        )
        critic = SharedBaseCritic(policy)
        with torch.no_grad():
            for name, parameter in policy.named_parameters():
                if "lora_B" in name:  # the two adapters apart from each other and from zero
                    parameter.fill_(0.05 if ".critic." in name else -0.05)
            critic.head.weight.fill_(0.1)
        policy.train()
        ids = _ids(tokenizer)
        values = critic(ids, torch.ones_like(ids))  # the critic's forward first: backward meets the policy's last
        loss = policy(ids, labels=ids).loss + values.pow(2).mean()
        loss.backward()
        assert policy.get_base_model().is_gradient_checkpointing is checkpointing
        grads.append({n: p.grad.clone() for n, p in policy.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys() and any(".critic." in n for n in grads[0])
    for name in grads[0]:
        torch.testing.assert_close(grads[0][name], grads[1][name], atol=1e-6, rtol=1e-5)


def test_a_ppo_run_with_a_shared_critic_writes_the_policys_adapter_alone(lora_runs, own_files):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    changes = ["ppo.critic_init=shared" if c.startswith("ppo.critic_init") else c for c in LORA_RUNS["ppo"]]
    run = compose(
        [
            "experiment=ppo",
            *stage_inputs("ppo", own_files, lora_runs),
            *SHRINK["ppo"],
            *changes,
            f"paths.artifacts={lora_runs}",
            "run_suffix=/shared_critic",
            *QUICK,
            *MEMORY,
        ]
    )
    train(run)
    checkpoint = lora_runs / "ppo" / "shared_critic" / "checkpoint"
    assert [p.name for p in (checkpoint / "adapter").iterdir() if p.is_dir()] == []  # no critic adapter in it
    merged = AutoModelForCausalLM.from_pretrained(checkpoint).eval()
    base = AutoModelForCausalLM.from_pretrained(lora_runs / "sft" / "checkpoint")
    adapted = PeftModel.from_pretrained(base, checkpoint / "adapter")
    ids = _ids(AutoTokenizer.from_pretrained(checkpoint))
    with torch.no_grad():
        torch.testing.assert_close(merged(ids).logits, adapted.eval()(ids).logits, atol=1e-4, rtol=1e-4)
