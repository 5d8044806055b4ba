"""Import and export of pairs, votes and preference rows: JSONL, Hugging Face ``datasets``, Label Studio.

Every reader validates each row and raises ``DataError`` naming file, line (or task) and field.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from lit_rlhf.collection.response_pairs import Comparison, pair_id_for
from lit_rlhf.collection.votes import Vote, check_choice, check_ratings
from lit_rlhf.data.errors import DataError
from lit_rlhf.data.jsonl import decode_utf8, optional_category, read_jsonl, require_text, write_jsonl

PREFERENCE_FIELDS = ("prompt", "chosen", "rejected", "category", "chosen_len", "rejected_len", "votes", "provenance")


def read_pairs(path: str | os.PathLike) -> list[Comparison]:
    """Pairs from JSONL rows ``{prompt, response_a, response_b, category?, pair_id?, meta?}``; ids must be unique."""
    pairs, seen = [], {}
    for line, row in read_jsonl(path):
        prompt = require_text(row, "prompt", str(path), line)
        a = require_text(row, "response_a", str(path), line)
        b = require_text(row, "response_b", str(path), line)
        category = optional_category(row, str(path), line, default="unknown")
        pair_id = row.get("pair_id") or pair_id_for(prompt, a, b)
        if not isinstance(pair_id, str):
            raise DataError(f"expected a string, got {type(pair_id).__name__}", str(path), line, "pair_id")
        if pair_id in seen:
            raise DataError(
                f"duplicate pair id {pair_id!r} (first on line {seen[pair_id]})", str(path), line, "pair_id"
            )
        meta = row.get("meta", {})
        if not isinstance(meta, dict):
            raise DataError("expected an object", str(path), line, "meta")
        seen[pair_id] = line
        pairs.append(Comparison(pair_id, prompt, category, a, b, meta))
    return pairs


def write_pairs(path: str | os.PathLike, pairs: Iterable[Comparison]) -> Path:
    return write_jsonl(path, (p.to_row() for p in pairs))


def read_votes(path: str | os.PathLike, known_pairs: set[str] | None = None) -> list[Vote]:
    """Votes from JSONL rows (``Vote`` fields); unknown pair ids are an error when ``known_pairs`` is given."""
    votes = []
    for line, row in read_jsonl(path):
        pair_id = require_text(row, "pair_id", str(path), line)
        annotator = require_text(row, "annotator", str(path), line)
        if known_pairs is not None and pair_id not in known_pairs:
            raise DataError(f"unknown pair id {pair_id!r}", str(path), line, "pair_id")
        fields = {}
        for key, check in (("choice", check_choice), ("ratings_a", check_ratings), ("ratings_b", check_ratings)):
            try:
                fields[key] = check(row.get(key, {} if key != "choice" else None))
            except ValueError as err:
                raise DataError(str(err), str(path), line, key) from None
        extra = {k: row[k] for k in ("source", "shown_order", "shown_at", "submitted_at") if k in row}
        votes.append(Vote(pair_id, annotator, **fields, **extra))
    return votes


def write_votes(path: str | os.PathLike, votes: Iterable[Vote]) -> Path:
    return write_jsonl(path, (v.to_row() for v in votes))


def read_preferences(path: str | os.PathLike) -> list[dict]:
    """The preference data set's rows, each checked for the fields the reward model reads."""
    rows = []
    for line, row in read_jsonl(path):
        for key in ("prompt", "chosen", "rejected"):
            require_text(row, key, str(path), line)
        optional_category(row, str(path), line)
        missing = [k for k in PREFERENCE_FIELDS if k not in row]
        if missing:
            raise DataError(f"missing (row has {sorted(row)})", str(path), line, missing[0])
        rows.append(row)
    return rows


def to_hf_dataset(rows: Sequence[dict]):
    """A ``datasets.Dataset`` of preference rows (nested dicts are stored as JSON strings: their keys vary)."""
    from datasets import Dataset

    flat = [{k: json.dumps(v, sort_keys=True) if isinstance(v, dict) else v for k, v in row.items()} for row in rows]
    return Dataset.from_list(flat)


def save_hf(rows: Sequence[dict], path: str | os.PathLike) -> Path:
    to_hf_dataset(rows).save_to_disk(str(path))
    return Path(path)


def load_hf(path: str | os.PathLike) -> list[dict]:
    """Rows saved by ``save_hf`` (``load_from_disk``), with the JSON fields decoded again."""
    from datasets import load_from_disk

    out = []
    for row in load_from_disk(str(path)):
        out.append(
            {k: json.loads(v) if k in ("votes", "provenance") and isinstance(v, str) else v for k, v in row.items()}
        )
    return out


def import_label_studio(
    path: str | os.PathLike,
    prompt_key: str = "prompt",
    left_key: str = "answer1",
    right_key: str = "answer2",
    category_key: str = "category",
) -> tuple[list[Comparison], list[Vote]]:
    """Pairs and votes from a Label Studio JSON export of the pairwise-comparison template.

    Each task's ``data`` holds the prompt and the two answers (keys configurable); each annotation's
    ``pairwise`` result has ``value.selected`` "left" (the first answer, A) or "right" (B). Cancelled
    annotations are skipped; anything else malformed raises ``DataError`` naming the task.
    """
    path = Path(path)
    try:
        tasks = json.loads(decode_utf8(path.read_bytes(), str(path)))
    except (OSError, json.JSONDecodeError) as err:
        raise DataError(f"not a readable JSON export ({err})", str(path)) from None
    if not isinstance(tasks, list):
        raise DataError("a Label Studio export is a JSON list of tasks", str(path))
    pairs, votes = [], []
    for number, task in enumerate(tasks, start=1):
        where = f"{path}[task {task.get('id', number) if isinstance(task, dict) else number}]"
        data = task.get("data") if isinstance(task, dict) else None
        if not isinstance(data, dict):
            raise DataError("task has no 'data' object", where)
        prompt = require_text(data, prompt_key, where, None)
        a, b = require_text(data, left_key, where, None), require_text(data, right_key, where, None)
        category = optional_category(data, where, None, default="unknown", key=category_key)
        pair = Comparison(pair_id_for(prompt, a, b), prompt, category, a, b, {"label_studio_task": task.get("id")})
        pairs.append(pair)
        for annotation in task.get("annotations") or []:
            if annotation.get("was_cancelled"):
                continue
            selected = [
                r.get("value", {}).get("selected") for r in annotation.get("result", []) if r.get("type") == "pairwise"
            ]
            if len(selected) != 1 or selected[0] not in ("left", "right"):
                raise DataError(
                    f"annotation {annotation.get('id')} needs one pairwise result 'left' or 'right', got {selected}",
                    where,
                    None,
                    "annotations",
                )
            who = annotation.get("completed_by", "unknown")
            if isinstance(who, dict):  # newer exports nest the user
                who = who.get("email") or who.get("id")
            votes.append(Vote(pair.pair_id, str(who), "A" if selected[0] == "left" else "B", source="label_studio"))
    return pairs, votes
