"""Prompt/response data for supervised fine-tuning: rows, tokenisation with prompt masking, a DataModule."""

from __future__ import annotations

import os

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from lit_rlhf.core.sft_loss import IGNORE_INDEX
from lit_rlhf.data.errors import ConfigError, ReportedRows, SkipReport
from lit_rlhf.data.formatting import (
    encode_prompt,
    encode_response,
    pad_batch,
    truncate_keeping_response,
)
from lit_rlhf.data.jsonl import optional_category, read_rows, require_text
from lit_rlhf.data.resumable import ResumableDataLoader, ResumableTrainLoader


def gym_sft_rows(gym, split: str = "train", per_prompt: int = 4, categories: list[str] | None = None) -> list[dict]:
    """The gym's (imperfect) demonstrations for a split; with ``categories``, those categories' only (e.g. the
    capability probes' identity and format, as the NTP term's feed in PPO)."""
    rows = gym.demonstrations(split, per_prompt=per_prompt, categories=categories)
    unknown = sorted(set(categories or []) - {r["category"] for r in rows})
    if unknown:
        raise ConfigError(f"data categories: {unknown} have no gym demonstrations in split {split!r}")
    return rows


def read_sft_jsonl(
    path: str | os.PathLike,
    prompt_key: str = "prompt",
    response_key: str = "response",
    on_error: str = "raise",
    report: SkipReport | None = None,
) -> list[dict]:
    """Rows ``{prompt, response, category}`` from JSONL.

    A bad row (missing or empty field, wrong type, a ``category`` that is not a non-empty
    string) raises ``DataError`` naming file:line and field; with ``on_error="skip"`` it is
    counted in ``report`` instead. Malformed JSON always raises: a broken file is not a bad row.
    """
    if path is None:
        raise ConfigError(
            "an SFT data file's path is null: set data.train.path (and data.val.path), or "
            "data.val=null to train without validation data"
        )

    def parse(row: dict, source: str, line: int) -> dict:
        return {
            "prompt": require_text(row, prompt_key, source, line),
            "response": require_text(row, response_key, source, line),
            "category": optional_category(row, source, line),
        }

    report = report if report is not None else SkipReport()
    return ReportedRows(read_rows(path, parse, on_error, report), report)


class SFTDataset(Dataset):
    """Tokenised rows: ``input_ids`` and ``prompt_len``.

    Over-long rows keep their response and lose prompt tokens from the left (the end
    of the prompt matters most for the answer); a response longer than ``max_length``
    on its own is cut at the right. Both are counted in ``truncated``.
    """

    def __init__(self, rows: list[dict], tokenizer, max_length: int = 256):
        if max_length < 8:
            raise ConfigError(f"max_length must be at least 8, got {max_length}")
        self.items: list[tuple[list[int], int]] = []
        self.truncated = {"prompt_cut": 0, "response_cut": 0}
        for row in rows:
            prompt_ids, response_ids, cut = truncate_keeping_response(
                encode_prompt(tokenizer, row["prompt"]), encode_response(tokenizer, row["response"]), max_length
            )
            for key, was_cut in cut.items():
                self.truncated[key] += was_cut
            self.items.append((prompt_ids + response_ids, len(prompt_ids)))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict:
        ids, prompt_len = self.items[index]
        return {"input_ids": ids, "prompt_len": prompt_len}


class SFTCollator:
    """Right-pads a batch; labels are the ids with prompt and padding set to ``IGNORE_INDEX``."""

    def __init__(self, pad_token_id: int):
        self.pad_token_id = pad_token_id

    def __call__(self, batch: list[dict]) -> dict[str, torch.Tensor]:
        ids, mask = pad_batch([b["input_ids"] for b in batch], self.pad_token_id)
        labels = ids.masked_fill(~mask.bool(), IGNORE_INDEX)
        for i, b in enumerate(batch):
            labels[i, : b["prompt_len"]] = IGNORE_INDEX
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}


class SeededLoaders(ResumableTrainLoader):
    """Train/val loaders over ``train_set``/``val_set`` with the module's collator; the shuffle is seeded.

    The train loader is resumable: a resumed run continues in the order the uninterrupted one drew.
    """

    def train_dataloader(self) -> DataLoader:
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

    def val_dataloader(self) -> DataLoader | list:
        if self.val_set is None:
            return []
        return DataLoader(
            self.val_set, batch_size=self.batch_size, collate_fn=self.collate, num_workers=self.num_workers
        )


class SFTDataModule(SeededLoaders, L.LightningDataModule):
    """Wraps train/val rows (gym demonstrations or JSONL) into tokenised loaders."""

    def __init__(
        self,
        tokenizer,
        train: list[dict],
        val: list[dict] | None = None,
        batch_size: int = 32,
        max_length: int = 256,
        num_workers: int = 0,
        seed: int = 0,
    ):
        super().__init__()
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        # counts of the rows a reader skipped (``on_error="skip"``), for the stage's report
        self.skip_reports = {
            name: rows.report for name, rows in (("train", train), ("val", val)) if isinstance(rows, ReportedRows)
        }
        self.tokenizer, self.train_rows, self.val_rows = tokenizer, list(train), list(val or [])
        self.batch_size, self.max_length, self.num_workers, self.seed = batch_size, max_length, num_workers, seed
        self.collate = SFTCollator(tokenizer.pad_token_id)
        self.train_set: SFTDataset | None = None
        self.val_set: SFTDataset | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is None:
            self.train_set = SFTDataset(self.train_rows, self.tokenizer, self.max_length)
            self.val_set = SFTDataset(self.val_rows, self.tokenizer, self.max_length) if self.val_rows else None
