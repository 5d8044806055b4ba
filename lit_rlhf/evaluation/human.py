"""A human evaluation round through the annotation page: blind pairs out, labels back in, win/tie/loss.

``write_blind_pairs`` puts each candidate answer next to the baseline's answer to the same prompt
(same sampling round), in a random A/B order, under an id that reveals nothing; which model is A
goes to a separate key file that annotators never see. Pairs whose two answers are identical are not
asked: they are ties, counted as such. ``human_outcomes`` reads the labels from the annotation
database, takes each pair's majority verdict and maps it back to candidate-vs-baseline outcomes.
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from lit_rlhf.collection.aggregate import aggregate_votes
from lit_rlhf.collection.io import write_pairs
from lit_rlhf.collection.response_pairs import Comparison
from lit_rlhf.data.jsonl import read_jsonl, write_jsonl

PAIRS_FILE, KEY_FILE, DB_FILE = "pairs.jsonl", "key.jsonl", "labels.sqlite"
# An empty answer is shown as this, so people judge silence too (a pair needs two non-empty texts).
NO_ANSWER = "(no answer)"


def write_blind_pairs(
    out_dir: str | Path,
    prompts: Sequence[str],
    categories: Sequence[str],
    baseline: tuple[str, list[list[str]] | dict[str, list[list[str]]]],
    candidates: dict[str, list[list[str]]],
    seed: int = 0,
) -> dict:
    """Write ``pairs.jsonl`` (for ``lit-rlhf-annotate``) and ``key.jsonl`` (who is A) under ``out_dir``.

    ``baseline`` is ``(name, rounds)``, or ``(name, {candidate: rounds})`` when candidates meet the
    baseline's answers a different number of times (a candidate pooled over several checkpoints).
    """
    out_dir = Path(out_dir)
    rng = random.Random(seed)
    base_name, base_answers_of = baseline
    pairs, key = [], []
    for name, rounds in candidates.items():
        base_rounds = base_answers_of[name] if isinstance(base_answers_of, dict) else base_answers_of
        for k, (answers, base_answers) in enumerate(zip(rounds, base_rounds, strict=True)):
            for i, (prompt, category) in enumerate(zip(prompts, categories, strict=True)):
                pair_id = hashlib.sha1(f"{seed}:{name}:{k}:{i}".encode()).hexdigest()[:16]
                ours, theirs = answers[i], base_answers[i]
                candidate_is_a = rng.random() < 0.5
                row = {
                    "pair_id": pair_id,
                    "candidate": name,
                    "baseline": base_name,
                    "round": k,
                    "prompt": prompt,
                    "category": category,
                    "candidate_is_a": candidate_is_a,
                    "identical": ours.strip() == theirs.strip(),
                }
                key.append(row)
                if not row["identical"]:
                    a, b = (ours, theirs) if candidate_is_a else (theirs, ours)
                    pairs.append(Comparison(pair_id, prompt, category, a.strip() or NO_ANSWER, b.strip() or NO_ANSWER))
    write_pairs(out_dir / PAIRS_FILE, pairs)
    write_jsonl(out_dir / KEY_FILE, key)
    return {
        "pairs": len(pairs),
        "identical_answers": len(key) - len(pairs),
        "pairs_file": str(out_dir / PAIRS_FILE),
        "key_file": str(out_dir / KEY_FILE),
    }


def human_outcomes(key_path: str | Path, votes, min_agreement: float = 0.6) -> dict[str, dict]:
    """Per candidate: ``outcomes`` (+1 candidate preferred, 0 tie, -1 baseline preferred), ``categories``
    and ``counts`` (labelled, identical answers auto-tied, still unlabelled; unlabelled pairs are left out).

    ``votes`` are ``Vote`` objects (e.g. ``AnnotationStore.votes()``); a pair's verdict is the
    majority of its votes (``aggregate_votes``), and a contradictory verdict counts as a tie.
    """
    tallies: dict[str, Counter] = {}
    for vote in votes:
        tallies.setdefault(vote.pair_id, Counter())[vote.choice] += 1
    results: dict[str, dict] = {}
    for _, row in read_jsonl(key_path):
        entry = results.setdefault(
            row["candidate"],
            {"outcomes": [], "categories": [], "counts": Counter(labelled=0, identical=0, unlabelled=0)},
        )
        if row["identical"]:
            outcome = 0
            entry["counts"]["identical"] += 1
        else:
            winner, status = aggregate_votes(dict(tallies.get(row["pair_id"], {})), min_agreement)
            if status == "unlabelled":
                entry["counts"]["unlabelled"] += 1
                continue
            entry["counts"]["labelled"] += 1
            outcome = 0 if winner is None else (1 if (winner == "A") == row["candidate_is_a"] else -1)
        entry["outcomes"].append(outcome)
        entry["categories"].append(row["category"])
    for entry in results.values():
        entry["counts"] = dict(entry["counts"])
    return results
