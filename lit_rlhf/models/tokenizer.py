"""An offline word-level tokenizer for the gym, built with the ``tokenizers`` library.

Gym text is lower-case words separated by spaces, so splitting on whitespace and
joining with spaces round-trips it exactly; words it never saw map to ``<unk>``.
"""

from __future__ import annotations

from tokenizers import (
    Tokenizer,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    trainers,
)
from transformers import PreTrainedTokenizerFast

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<s>", "</s>"

# Turns are "user: ... assistant:" so the same code path that uses a real model's
# chat template works on the embedded model unchanged.
CHAT_TEMPLATE = (
    "{% for m in messages %}{{ m['role'] }} : {{ m['content'] }} "
    "{% if m['role'] == 'assistant' %}" + EOS + " {% endif %}{% endfor %}"
    "{% if add_generation_prompt %}assistant :{% endif %}"
)


def gym_corpus() -> list[str]:
    """Every text the gym can produce, used to fix the vocabulary."""
    import random

    from lit_rlhf.gym import world
    from lit_rlhf.gym.prompt_bank import all_prompts
    from lit_rlhf.gym.responses import flawed_response, ideal_response

    texts = ["user : assistant :"]
    for prompt in all_prompts():
        texts += [prompt.text, ideal_response(prompt)]
        rng = random.Random(prompt.text)
        texts += [flawed_response(prompt, rng) for _ in range(8)]
    for words in world.TOPICS.values():
        texts.append(" ".join(words))
    texts += [" ".join(world.FILLER_WORDS + world.OFF_TOPIC_WORDS + world.COMPLIANCE_STEPS)]
    texts += world.WRONG_IDENTITIES + [world.REFUSAL, world.IDENTITY_ANSWER]
    return texts


def build_gym_tokenizer(extra_texts: list[str] | None = None) -> PreTrainedTokenizerFast:
    """A ``PreTrainedTokenizerFast`` over the gym's words; saves and loads like any HF tokenizer."""
    core = Tokenizer(models.WordLevel(unk_token=UNK))
    core.normalizer = normalizers.Lowercase()
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    core.decoder = decoders.WordPiece(prefix="##", cleanup=False)  # joins words with single spaces
    trainer = trainers.WordLevelTrainer(special_tokens=[PAD, UNK, BOS, EOS], min_frequency=1)
    core.train_from_iterator(gym_corpus() + list(extra_texts or []), trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        pad_token=PAD,
        unk_token=UNK,
        bos_token=BOS,
        eos_token=EOS,
        padding_side="left",
        model_max_length=256,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer
