"""Tokenised DPO pairs, the one-forward log-prob of both sides, and the reference log-prob cache.

Reference log-probs are computed ONCE, before training: ``DPODataModule.cache_reference_logps``
runs the frozen reference over every pair (train and validation) and stores
``log π_ref(y_w|x)`` and ``log π_ref(y_l|x)`` (sums over response tokens) in the dataset items.
Batches then carry them, so the reference model does not need to stay in memory (or on the
accelerator) while the policy trains, and no step pays for a second forward pass.

Batches put the B chosen sequences and the B rejected ones into one right-padded ``[2B, T]``
tensor (chosen rows first), so the policy scores both sides in a single forward.
Truncation follows the SFT data: a response keeps its tokens and the prompt loses tokens from
the left; a response longer than ``max_length`` alone is cut at the right. Both are counted.
"""

from __future__ import annotations

import random

import lightning as L
import torch
from torch.utils.data import Dataset

from lit_rlhf.core.dpo_loss import response_token_logprobs, sequence_logprobs
from lit_rlhf.data.errors import ConfigError, DataError
from lit_rlhf.data.formatting import (
    encode_prompt,
    encode_response,
    pad_batch,
    truncate_keeping_response,
)
from lit_rlhf.models.modes import eval_mode
from lit_rlhf.sft.data import SeededLoaders

SIDES = ("chosen", "rejected")


def encode_pair_side(tokenizer, prompt: str, response: str, max_length: int) -> tuple[list[int], int, dict]:
    """``(ids, prompt_len, cut)`` for one (prompt, response) sequence under the truncation policy above."""
    prompt_ids, response_ids, cut = truncate_keeping_response(
        encode_prompt(tokenizer, prompt), encode_response(tokenizer, response), max_length
    )
    return prompt_ids + response_ids, len(prompt_ids), cut


class DPODataset(Dataset):
    """Rows ``{prompt, chosen, rejected}`` as token ids; ``ref_chosen``/``ref_rejected`` once cached."""

    def __init__(self, rows: list[dict], tokenizer, max_length: int = 128):
        if max_length < 8:
            raise ConfigError(f"max_length must be at least 8, got {max_length}")
        self.truncated = {"prompt_cut": 0, "response_cut": 0}
        self.items: list[dict] = []
        for row in rows:
            item = {}
            for side in SIDES:
                ids, prompt_len, cut = encode_pair_side(tokenizer, row["prompt"], row[side], max_length)
                item[f"{side}_ids"], item[f"{side}_prompt_len"] = ids, prompt_len
                for key, was_cut in cut.items():
                    self.truncated[key] += int(was_cut)
            self.items.append(item)

    @property
    def reference_cached(self) -> bool:
        return all("ref_chosen" in item for item in self.items)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        return self.items[i]


class DPOCollator:
    """``input_ids``, ``attention_mask``, ``response_mask`` ``[2B, T]`` (chosen rows, then rejected rows),
    and ``ref_logps`` ``[2B]`` when the reference log-probs are cached."""

    def __init__(self, pad_token_id: int):
        self.pad_token_id = pad_token_id

    def __call__(self, batch: list[dict]) -> dict[str, torch.Tensor]:
        seqs = [(b[f"{side}_ids"], b[f"{side}_prompt_len"]) for side in SIDES for b in batch]
        input_ids, attention_mask = pad_batch([ids for ids, _ in seqs], self.pad_token_id)
        response_mask = attention_mask.clone()
        for i, (_, prompt_len) in enumerate(seqs):
            response_mask[i, :prompt_len] = 0
        out = {"input_ids": input_ids, "attention_mask": attention_mask, "response_mask": response_mask}
        if all("ref_chosen" in b for b in batch):
            out["ref_logps"] = torch.tensor([b[f"ref_{side}"] for side in SIDES for b in batch], dtype=torch.float32)
        return out


def concatenated_logprobs(model, batch: dict, average: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """``(logπ(y_w|x), logπ(y_l|x))``, each ``[B]``, from ONE forward over the ``[2B, T]`` batch."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False).logits
    token_logps, mask = response_token_logprobs(logits, batch["input_ids"], batch["response_mask"])
    logps = sequence_logprobs(token_logps, mask, average)
    half = logps.size(0) // 2
    return logps[:half], logps[half:]


@torch.no_grad()
def cache_reference_logps(reference, dataset: DPODataset, collate: DPOCollator, batch_size: int = 32) -> int:
    """Store the reference's summed response log-probs in every item that lacks them; returns how many it computed.

    Items already cached are skipped, so calling it twice costs no second forward.
    """
    todo = [i for i, item in enumerate(dataset.items) if "ref_chosen" not in item]
    if not todo:
        return 0
    device = next(reference.parameters()).device
    with eval_mode(reference):
        for start in range(0, len(todo), batch_size):
            index = todo[start : start + batch_size]
            batch = {k: v.to(device) for k, v in collate([dataset.items[i] for i in index]).items()}
            chosen, rejected = concatenated_logprobs(reference, batch)
            for i, c, r in zip(index, chosen.tolist(), rejected.tolist()):
                dataset.items[i]["ref_chosen"], dataset.items[i]["ref_rejected"] = c, r
    return len(todo)


def split_by_prompt(rows: list[dict], fraction: float, seed: int) -> tuple[list[dict], list[dict]]:
    """``(val, train)``: ``fraction`` of the distinct prompts (at least one) with all their pairs held out, so no
    validation prompt is trained on through another of its pairs. Prompts are drawn in a shuffled order
    (``seed``); with one pair per prompt this is a plain shuffle of the pairs."""
    by_prompt: dict[str, list[dict]] = {}
    for row in rows:
        by_prompt.setdefault(row["prompt"], []).append(row)
    prompts = list(by_prompt)
    random.Random(f"{seed}:dpo-val-split").shuffle(prompts)
    n_val = max(1, int(round(fraction * len(prompts))))
    return ([r for p in prompts[:n_val] for r in by_prompt[p]], [r for p in prompts[n_val:] for r in by_prompt[p]])


class DPODataModule(SeededLoaders, L.LightningDataModule):
    """Train/val pairs -> loaders of ``[2B, T]`` batches with cached reference log-probs.

    Without ``val`` rows, ``val_fraction`` of the training pairs (seeded) is held out. Call
    :meth:`cache_reference_logps` with the frozen reference before ``Trainer.fit``.
    """

    def __init__(
        self,
        tokenizer,
        train: list[dict],
        val: list[dict] | None = None,
        batch_size: int = 16,
        max_length: int = 128,
        val_fraction: float = 0.0,
        num_workers: int = 0,
        seed: int = 0,
    ):
        super().__init__()
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        train, val = list(train), list(val or [])
        if not val and val_fraction > 0:
            val, train = split_by_prompt(train, val_fraction, seed)
        if not train:
            raise DataError("no DPO training pairs")
        self.tokenizer, self.train_rows, self.val_rows = tokenizer, train, val
        self.batch_size, self.max_length, self.num_workers, self.seed = batch_size, max_length, num_workers, seed
        self.collate = DPOCollator(tokenizer.pad_token_id)
        self.train_set: DPODataset | None = None
        self.val_set: DPODataset | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is None:
            self.train_set = DPODataset(self.train_rows, self.tokenizer, self.max_length)
            self.val_set = DPODataset(self.val_rows, self.tokenizer, self.max_length) if self.val_rows else None

    def cache_reference_logps(self, reference, batch_size: int | None = None) -> int:
        """One pass of the frozen reference over train and validation pairs (see the module docstring)."""
        self.setup()
        sets = [s for s in (self.train_set, self.val_set) if s is not None]
        return sum(cache_reference_logps(reference, s, self.collate, batch_size or self.batch_size) for s in sets)

    @property
    def truncated(self) -> dict[str, dict[str, int]]:
        return {name: s.truncated for name, s in (("train", self.train_set), ("val", self.val_set)) if s is not None}
