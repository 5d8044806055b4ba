"""A user's own model and files, built offline: a tiny Qwen2 with a byte-level BPE tokenizer trained on the
data, and hand-written JSONL files of demonstrations, preference pairs and prompts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

TOPICS = [
    "the moon",
    "a river",
    "bread",
    "winter",
    "a lighthouse",
    "tea",
    "the sea",
    "a garden",
    "rain",
    "a clock",
    "the forest",
    "a train",
]


def _demonstrations() -> list[dict]:
    rows = []
    for topic in TOPICS:
        rows.append({"prompt": f"Describe {topic} in one sentence.", "response": f"{topic.capitalize()} is calm."})
        rows.append({"prompt": f"Name one thing about {topic}.", "response": f"One thing about {topic}: it changes."})
        rows.append({"prompt": f"Is {topic} nice?", "response": "Yes, often."})
    return rows


def _pairs() -> list[dict]:
    """The better answer is longer in half the pairs and shorter in the other half, by similar margins, as
    length balancing needs (real preference data is like that too, if less evenly)."""
    rows = []
    for i, topic in enumerate(TOPICS):
        good, bad = f"{topic.capitalize()} is calm and quiet.", "no"
        if i % 2:
            good, bad = "Calm.", f"no no {topic} no no, it is {topic}."
        rows.append(
            {"prompt": f"Describe {topic} in one sentence.", "chosen": good, "rejected": bad, "category": "describe"}
        )
        rows.append(
            {
                "prompt": f"Is {topic} nice?",
                "chosen": "Yes, often.",
                "rejected": "no" if i % 2 else f"banana {topic} banana.",
                "category": "opinion",
            }
        )
    return rows


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="session")
def own_files(tmp_path_factory) -> dict[str, Path]:
    """``{base, sft_train, sft_val, prefs, prompts, heldout}``: a saved HF model and the user's JSONL files."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    root = tmp_path_factory.mktemp("own")
    demos, pairs = _demonstrations(), _pairs()
    files = {
        "sft_train": _write(root / "sft_train.jsonl", demos[:30]),
        "sft_val": _write(root / "sft_val.jsonl", demos[30:]),
        "prefs": _write(root / "prefs.jsonl", pairs),
        "prompts": _write(
            root / "prompts.jsonl",
            [{"prompt": f"Tell me about {t}.", "category": "describe"} for t in TOPICS]
            + [{"prompt": f"Why {t}?"} for t in TOPICS],
        ),
        "heldout": _write(
            root / "heldout.jsonl", [{"prompt": f"What is {t} like?", "category": "describe"} for t in TOPICS[:6]]
        ),
    }
    texts = [r["prompt"] + " " + r["response"] for r in demos] + [r["chosen"] + r["rejected"] for r in pairs]
    core = Tokenizer(models.BPE(unk_token=None))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    special = ["<|endoftext|>", "<|pad|>"]
    core.train_from_iterator(
        texts * 4,
        trainers.BpeTrainer(
            vocab_size=400, special_tokens=special, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
        ),
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core, eos_token=special[0], pad_token=special[1], padding_side="left"
    )
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=True,
    )
    base = root / "base"
    Qwen2ForCausalLM(config).save_pretrained(base)
    tokenizer.save_pretrained(base)
    return {"base": base, **files}


# A user's run, made quick: one short epoch on the CPU; each stage's own defaults otherwise stay as they are.
QUICK = [
    "trainer.max_epochs=1",
    "+trainer.limit_train_batches=2",
    "+trainer.limit_val_batches=1",
    "trainer.accelerator=cpu",
    "logger=csv",
]
# What a test adds to each generic experiment (and to each stage of the files plan) to make it small.
SHRINK = {
    "sft": ["data.max_length=64", "data.batch_size=4"],
    "reward_model": ["data.max_length=64", "data.batch_size=4"],
    "ppo": [
        "ppo.prompts_per_iteration=4",
        "ppo.prompt_filter.k=2",
        "ppo.prompt_filter.min_variance=0",
        "module.config.max_new_tokens=6",
        "module.config.ppo_epochs=1",
        "ppo.eval.samples_per_prompt=1",
    ],
    "dpo": [
        "dpo.data.max_length=64",
        "dpo.data.batch_size=4",
        "dpo.data.val_fraction=0.25",
        "dpo.eval.max_new_tokens=6",
        "dpo.eval.samples_per_prompt=1",
    ],
    "eval": ["eval.max_new_tokens=6", "eval.samples_per_prompt=1"],
}


def stage_inputs(stage: str, files: dict[str, Path], art: Path) -> list[str]:
    """The overrides that point the generic experiment ``stage`` at the user's files and at the earlier stages'
    outputs under ``art`` (what conf/pipeline_files.yaml's inputs fill in)."""
    sft, reward_model = f"{art}/sft/checkpoint", f"{art}/reward_model/checkpoint"
    return {
        "sft": [
            f"model.source={files['base']}",
            f"data.train.path={files['sft_train']}",
            f"data.val.path={files['sft_val']}",
        ],
        "reward_model": [f"model.source={sft}", f"data.train.path={files['prefs']}"],
        "ppo": [f"model.source={sft}", f"ppo.reward_model={reward_model}", f"ppo.prompts.path={files['prompts']}"],
        "dpo": [f"model.source={sft}", f"dpo.pairs.path={files['prefs']}", f"dpo.eval.reward_model={reward_model}"],
        "eval": [
            f"eval.prompts={files['heldout']}",
            f"eval.reward_model={reward_model}",
            f"eval.baseline.path={sft}",
            f"eval.candidates={{ppo: {art}/ppo/checkpoint, dpo: {art}/dpo/checkpoint}}",
        ],
    }[stage]
