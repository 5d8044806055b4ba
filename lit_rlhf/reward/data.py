"""Preference pairs for reward modelling: reading rows, tokenising (prompt, response), a DataModule.

Rows are ``{prompt, chosen, rejected, category?, margin?, ...}`` (the schema the collection
stage writes; extra fields are kept but unused). A batch puts the B chosen sequences and
the B rejected ones into one ``[2B, T]`` tensor so the reward model scores both sides in a
single forward pass.

Truncation policy: a (prompt, response) longer than ``max_length`` keeps its response and
loses prompt tokens from the left (the end of a dialogue matters most for judging the
reply); a response that alone exceeds the budget is cut at the right. Both are counted in
``PreferenceDataset.truncated`` and reported by the stage.
"""

from __future__ import annotations

import random

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from lit_rlhf.data.errors import ConfigError
from lit_rlhf.data.formatting import (
    HH_FRAME,
    RESPONSE_PREFIX,
    encode_prompt,
    encode_response,
    pad_batch,
    truncate_keeping_response,
)
from lit_rlhf.data.preference_files import PreferenceRows
from lit_rlhf.data.resumable import ResumableDataLoader, ResumableTrainLoader
from lit_rlhf.reward.length_balance import bucket_index, bucket_names, check_edges

INPUT_FORMATS = ("chat", "pair")
DEFAULT_EDGES = (1, 5, 10, 20, 40)


def resolve_input_format(tokenizer, input_format: str = "auto") -> str:
    """``"pair"`` (BERT-style sentence-pair encoding: ``[CLS] prompt [SEP] response [SEP]``)
    for encoder tokenizers that have CLS and SEP and no chat template; ``"chat"`` otherwise
    (the shared prompt formatting of every stage, response followed by EOS)."""
    if input_format not in ("auto", *INPUT_FORMATS):
        raise ConfigError(f"input_format must be 'auto' or one of {INPUT_FORMATS}, got {input_format!r}")
    if input_format == "auto":
        encoder_like = tokenizer.cls_token_id is not None and tokenizer.sep_token_id is not None
        input_format = "pair" if encoder_like and not getattr(tokenizer, "chat_template", None) else "chat"
    if input_format == "chat" and tokenizer.eos_token_id is None:
        raise ConfigError("input_format 'chat' ends each response with EOS, but the tokenizer has no eos_token")
    return input_format


def uses_token_type_ids(tokenizer, input_format: str) -> bool:
    """Whether the pair format gives segment ids, as ``tokenizer(prompt, response)`` does (BERT/MiniLM: yes;
    RoBERTa, whose tokenizer has no ``token_type_ids`` input: no)."""
    return input_format == "pair" and "token_type_ids" in getattr(tokenizer, "model_input_names", ())


def encode_with_segments(
    tokenizer, prompt: str, response: str, max_length: int, input_format: str = "chat"
) -> tuple[list[int], list[int] | None, dict[str, bool]]:
    """``(input_ids, token_type_ids, cut)`` of one scored sequence.

    ``"pair"``: ``[CLS] prompt [SEP] response [SEP]`` with ``token_type_ids`` 0 for ``[CLS] prompt [SEP]`` and 1
    for ``response [SEP]``, as ``tokenizer(prompt, response)`` gives them (``None`` when the tokenizer has no
    segment ids). ``"chat"``: the prompt through :func:`encode_prompt`, the response through
    :func:`encode_response` (a leading space, EOS after), ``token_type_ids`` ``None``. ``cut`` says which part
    was truncated (see the module's truncation policy).
    """
    if input_format == "pair":
        prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        response_ids = tokenizer(response, add_special_tokens=False)["input_ids"]
        special = 3  # [CLS] prompt [SEP] response [SEP]
    else:
        prompt_ids, response_ids, special = encode_prompt(tokenizer, prompt), encode_response(tokenizer, response), 0
    prompt_ids, response_ids, cut = truncate_keeping_response(prompt_ids, response_ids, max_length - special)
    if input_format != "pair":
        return prompt_ids + response_ids, None, cut
    cls_id, sep_id = tokenizer.cls_token_id, tokenizer.sep_token_id
    ids = [cls_id, *prompt_ids, sep_id, *response_ids, sep_id]
    segments = [0] * (len(prompt_ids) + 2) + [1] * (len(response_ids) + 1)
    return ids, (segments if uses_token_type_ids(tokenizer, input_format) else None), cut


def encode_prompt_response(
    tokenizer, prompt: str, response: str, max_length: int, input_format: str = "chat"
) -> tuple[list[int], dict[str, bool]]:
    """Token ids of one scored sequence and which parts were cut (:func:`encode_with_segments` without segments)."""
    ids, _, cut = encode_with_segments(tokenizer, prompt, response, max_length, input_format)
    return ids, cut


def describe_encoding(tokenizer, input_format: str, max_length: int) -> dict:
    """How :func:`encode_with_segments` turns (prompt, response) into model inputs, as plain data.

    Stored beside a saved reward model (``reward_model.json``) so that code outside lit_rlhf can
    reproduce the inputs exactly; ``docs/reward_model.md`` has a recipe that reads it.
    """
    pair = input_format == "pair"
    if pair:
        prompt_template = "{prompt}"
    elif getattr(tokenizer, "chat_template", None):
        prompt_template = "chat_template"  # the tokenizer's own, one user turn, add_generation_prompt=True
    else:
        prompt_template = HH_FRAME
    return {
        "input_format": input_format,
        "prompt_template": prompt_template,
        "response_prefix": "" if pair else RESPONSE_PREFIX,
        "append_eos": not pair,
        "cls_sep": pair,
        "token_type_ids": uses_token_type_ids(tokenizer, input_format),
        "max_length": max_length,
        "steps": [
            "prompt text: tokenizer.apply_chat_template([{'role': 'user', 'content': prompt}], tokenize=False, "
            "add_generation_prompt=True) when prompt_template is 'chat_template', else prompt_template with "
            "{prompt} replaced",
            "response text: response_prefix + response, unless the response already starts with response_prefix",
            "prompt ids and response ids: tokenized separately, add_special_tokens=False; eos_token_id appended "
            "to the response ids when append_eos",
            "truncation to max_length (minus 3 with cls_sep): the response keeps its tokens (cut on the right "
            "only when it alone exceeds the budget minus 1), the prompt loses tokens on the left",
            "with cls_sep: [CLS] prompt [SEP] response [SEP]; token_type_ids 0 up to the first [SEP], 1 after",
            "score: decoders read the score head at the last token where attention_mask is 1; encoders the "
            "classification head (logits[:, 0])",
        ],
    }


class PreferenceDataset(Dataset):
    """Tokenised pairs with the category and length-difference bucket of each pair (for metrics)."""

    def __init__(
        self,
        rows: list[dict],
        tokenizer,
        max_length: int = 256,
        input_format: str = "chat",
        categories: list[str] | None = None,
        bucket_edges: list[int] = DEFAULT_EDGES,
    ):
        if max_length < 8:
            raise ConfigError(f"max_length must be at least 8, got {max_length}")
        edges = check_edges(list(bucket_edges))
        self.categories = list(categories or sorted({r.get("category", "all") for r in rows}))
        index = {c: i for i, c in enumerate(self.categories)}
        self.truncated = {"prompt_cut": 0, "response_cut": 0}
        self.items: list[dict] = []
        for row in rows:
            item = {}
            for side in ("chosen", "rejected"):
                ids, segments, cut = encode_with_segments(tokenizer, row["prompt"], row[side], max_length, input_format)
                for key, was_cut in cut.items():
                    self.truncated[key] += int(was_cut)
                item[f"{side}_ids"] = ids
                if segments is not None:
                    item[f"{side}_token_type_ids"] = segments
            chosen_len = len(tokenizer(row["chosen"], add_special_tokens=False)["input_ids"])
            rejected_len = len(tokenizer(row["rejected"], add_special_tokens=False)["input_ids"])
            self.items.append(
                {
                    **item,
                    "chosen_len": chosen_len,
                    "rejected_len": rejected_len,
                    "category_id": index.get(row.get("category", "all"), -1),
                    "bucket_id": bucket_index(chosen_len - rejected_len, edges),
                    "margin": float(row.get("margin", 0.0)),
                }
            )

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        return self.items[i]


class PreferenceCollator:
    """Right-pads chosen and rejected sequences together into ``input_ids [2B, T]`` (chosen rows first),
    and their ``token_type_ids [2B, T]`` (padding 0) when the items carry segment ids (pair format).

    Padding goes to the longest sequence of the batch, not to ``max_length``.
    """

    def __init__(self, pad_token_id: int):
        self.pad_token_id = pad_token_id

    def __call__(self, batch: list[dict]) -> dict[str, torch.Tensor]:
        seqs = [b["chosen_ids"] for b in batch] + [b["rejected_ids"] for b in batch]
        ids, mask = pad_batch(seqs, self.pad_token_id)
        out = {"input_ids": ids, "attention_mask": mask}
        if "chosen_token_type_ids" in batch[0]:
            segments = [b["chosen_token_type_ids"] for b in batch] + [b["rejected_token_type_ids"] for b in batch]
            out["token_type_ids"] = pad_batch(segments, 0)[0]
        for key in ("chosen_len", "rejected_len", "category_id", "bucket_id"):
            out[key] = torch.tensor([b[key] for b in batch], dtype=torch.long)
        out["margin"] = torch.tensor([b["margin"] for b in batch], dtype=torch.float)
        return out


class LengthGroupedBatchSampler(Sampler):
    """Shuffled batches of pairs of similar length, so a batch carries little padding.

    Each epoch (seeded, a new order every time): shuffle all pairs, cut them into
    mega-batches of ``batch_size * mega_factor`` pairs, sort each mega-batch by the longer
    side of the pair, cut into batches, shuffle the batch order. This is the usual
    "group by length" of HF Trainer, applied to pairs.
    """

    def __init__(self, lengths: list[int], batch_size: int, seed: int = 0, mega_factor: int = 16):
        self.lengths, self.batch_size, self.seed, self.mega = lengths, batch_size, seed, batch_size * mega_factor
        self.epoch = 0

    # The epoch counter is the whole state: a resumed run draws the orders the uninterrupted run drew
    # (ResumableDataLoader saves and restores it).
    def state_dict(self) -> dict:
        return {"epoch": self.epoch}

    def load_state_dict(self, state: dict) -> None:
        self.epoch = int(state["epoch"])

    def __iter__(self):
        rng = random.Random(f"{self.seed}:length-groups:{self.epoch}")
        self.epoch += 1
        order = list(range(len(self.lengths)))
        rng.shuffle(order)
        batches = []
        for start in range(0, len(order), self.mega):
            mega = sorted(order[start : start + self.mega], key=lambda i: self.lengths[i])
            batches += [mega[i : i + self.batch_size] for i in range(0, len(mega), self.batch_size)]
        rng.shuffle(batches)
        return iter(batches)

    def __len__(self) -> int:
        full, rest = divmod(len(self.lengths), self.mega)
        return full * -(-self.mega // self.batch_size) + -(-rest // self.batch_size)


class PreferenceDataModule(ResumableTrainLoader, L.LightningDataModule):
    """Train/val/test preference rows -> loaders of paired batches.

    ``length_balance`` (e.g. :class:`lit_rlhf.reward.length_balance.LengthBalancer`) is applied to
    the training rows only; held-out rows keep their natural length distribution. Without
    ``val`` rows, ``val_fraction`` of the training rows is held out instead, drawn with ``split_seed``: apart from
    the training ``seed`` (batch order), so that runs with several training seeds share one held-out set.
    ``group_by_length`` batches training pairs of similar length together
    (:class:`LengthGroupedBatchSampler`) so that little compute goes to padding.
    """

    def __init__(
        self,
        tokenizer,
        train: list[dict],
        val: list[dict] | None = None,
        test: list[dict] | None = None,
        batch_size: int = 16,
        max_length: int = 256,
        length_balance=None,
        val_fraction: float = 0.0,
        input_format: str = "auto",
        bucket_edges: list[int] = DEFAULT_EDGES,
        group_by_length: bool = True,
        num_workers: int = 0,
        seed: int = 0,
        split_seed: int = 0,
    ):
        super().__init__()
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        self.skip_reports = {
            name: rows.report
            for name, rows in (("train", train), ("val", val), ("test", test))
            if isinstance(rows, PreferenceRows)
        }
        train, val = list(train), list(val or [])
        if not val and val_fraction > 0:
            shuffled = train[:]
            random.Random(f"{split_seed}:val-split").shuffle(shuffled)
            n_val = max(1, round(val_fraction * len(shuffled)))
            val, train = shuffled[:n_val], shuffled[n_val:]
        self.tokenizer, self.train_rows, self.val_rows, self.test_rows = tokenizer, train, val, list(test or [])
        self.batch_size, self.max_length, self.num_workers, self.seed = batch_size, max_length, num_workers, seed
        self.length_balance, self.bucket_edges = length_balance, check_edges(list(bucket_edges))
        self.group_by_length = group_by_length
        self.input_format = resolve_input_format(tokenizer, input_format)
        all_rows = self.train_rows + self.val_rows + self.test_rows
        self.categories = sorted({r.get("category", "all") for r in all_rows})
        self.bucket_names = bucket_names(self.bucket_edges)
        self.balance_report = None
        self.collate = PreferenceCollator(tokenizer.pad_token_id)
        self.train_set = self.val_set = self.test_set = None

    def _dataset(self, rows: list[dict]) -> PreferenceDataset | None:
        if not rows:
            return None
        return PreferenceDataset(
            rows, self.tokenizer, self.max_length, self.input_format, self.categories, self.bucket_edges
        )

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        rows = self.train_rows
        if self.length_balance is not None:
            rows, self.balance_report = self.length_balance(rows, self.tokenizer)
            if not rows:
                raise ConfigError(
                    "length balancing removed every training pair; use "
                    "`data.length_balance.mode=upsample`, other edges, or `data.length_balance=null`"
                )
        self.train_set = self._dataset(rows)
        self.val_set, self.test_set = self._dataset(self.val_rows), self._dataset(self.test_rows)

    @property
    def truncated(self) -> dict[str, dict[str, int]]:
        sets = {"train": self.train_set, "val": self.val_set, "test": self.test_set}
        return {name: ds.truncated for name, ds in sets.items() if ds is not None}

    def train_dataloader(self) -> DataLoader:
        distributed = self.trainer is not None and self.trainer.world_size > 1
        if self.group_by_length and not distributed:  # under DDP, Lightning's distributed sampler takes over
            lengths = [max(len(i["chosen_ids"]), len(i["rejected_ids"])) for i in self.train_set.items]
            sampler = LengthGroupedBatchSampler(lengths, self.batch_size, self.seed)
            return self.resumable(
                ResumableDataLoader(
                    self.train_set, batch_sampler=sampler, collate_fn=self.collate, num_workers=self.num_workers
                )
            )
        generator = torch.Generator().manual_seed(self.seed)
        return self.resumable(
            ResumableDataLoader(
                self.train_set,
                batch_size=self.batch_size,
                shuffle=True,
                generator=generator,
                collate_fn=self.collate,
                num_workers=self.num_workers,
            )
        )

    def _eval_loader(self, dataset) -> DataLoader | list:
        if dataset is None:
            return []
        return DataLoader(dataset, batch_size=self.batch_size, collate_fn=self.collate, num_workers=self.num_workers)

    def val_dataloader(self):
        return self._eval_loader(self.val_set)

    def test_dataloader(self):
        return self._eval_loader(self.test_set)
