import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from lit_rlhf.generation import generate, left_pad
from lit_rlhf.gym import AlignmentGym
from lit_rlhf.gym.responses import ideal_response
from lit_rlhf.models import build_policy, save_hf_checkpoint
from lit_rlhf.models.modes import eval_mode


@pytest.fixture(scope="module")
def embedded():
    return build_policy("embedded", seed=0)


def test_embedded_model_is_a_tiny_llama_of_about_a_million_parameters(embedded):
    model, tokenizer = embedded
    n = sum(p.numel() for p in model.parameters())
    assert 0.5e6 < n < 5e6
    assert model.config.model_type == "llama"
    assert model.config.vocab_size == len(tokenizer)
    assert tokenizer.padding_side == "left" and tokenizer.pad_token_id != tokenizer.eos_token_id


def test_embedded_build_is_seeded(embedded):
    again, _ = build_policy("embedded", seed=0)
    other, _ = build_policy("embedded", seed=1)
    w = lambda m: m.model.embed_tokens.weight  # noqa: E731
    assert torch.equal(w(embedded[0]), w(again)) and not torch.equal(w(embedded[0]), w(other))


def test_tokenizer_round_trips_every_gym_text(embedded):
    _, tokenizer = embedded
    for prompt in AlignmentGym(seed=0).prompts("train"):
        for text in (prompt.text, ideal_response(prompt)):
            ids = tokenizer(text, add_special_tokens=False)["input_ids"]
            assert tokenizer.unk_token_id not in ids, text
            assert tokenizer.decode(ids) == text


def test_checkpoint_loads_with_plain_transformers_and_gives_the_same_logits(embedded, tmp_path):
    model, tokenizer = embedded
    path = save_hf_checkpoint(model, tokenizer, tmp_path / "ckpt")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp dir left behind
    loaded = AutoModelForCausalLM.from_pretrained(path)
    loaded_tok = AutoTokenizer.from_pretrained(path)
    ids = torch.tensor([loaded_tok("the answer is 7 .")["input_ids"]])
    torch.testing.assert_close(loaded(ids).logits, model(ids).logits)
    assert loaded_tok.chat_template == tokenizer.chat_template
    # Through lit_rlhf's builder, from the local path, offline.
    rebuilt, rebuilt_tok = build_policy(str(path))
    torch.testing.assert_close(rebuilt(ids).logits, model(ids).logits)
    # Overwriting an existing checkpoint is atomic too.
    save_hf_checkpoint(model, tokenizer, path)
    assert (path / "config.json").exists()


def test_bad_model_sources_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        build_policy(str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError, match="no config.json"):
        build_policy(str(tmp_path))
    with pytest.raises(ValueError, match="dtype"):
        from lit_rlhf.models.builder import _dtype

        _dtype("float8")


def test_generation_is_seeded_and_leaves_the_global_rng_alone(embedded):
    model, tokenizer = embedded
    prompts = ["who are you ?", "what is 3 plus 4 ?", "write about the ocean ."]
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = generate(model, tokenizer, prompts, max_new_tokens=6, seed=5)
    after = torch.rand(1)
    assert torch.equal(before, after)
    assert a == generate(model, tokenizer, prompts, max_new_tokens=6, seed=5)
    assert a != generate(model, tokenizer, prompts, max_new_tokens=6, seed=6)
    # batching must not change greedy outputs (left padding + attention mask are right)
    greedy_batched = generate(model, tokenizer, prompts, max_new_tokens=6, do_sample=False, batch_size=3)
    greedy_single = [generate(model, tokenizer, [p], max_new_tokens=6, do_sample=False)[0] for p in prompts]
    assert greedy_batched == greedy_single


def test_left_pad():
    ids, mask = left_pad([[1, 2, 3], [4]], pad_id=0)
    assert ids.tolist() == [[1, 2, 3], [0, 0, 4]]
    assert mask.tolist() == [[1, 1, 1], [0, 0, 1]]


def test_eval_mode_restores_the_mode_the_model_was_in_even_after_an_error():
    model = torch.nn.Sequential(torch.nn.Dropout(0.5))
    for training in (True, False):
        model.train(training)
        with pytest.raises(RuntimeError), eval_mode(model):
            assert not model.training
            raise RuntimeError("fails inside")
        assert model.training is training
