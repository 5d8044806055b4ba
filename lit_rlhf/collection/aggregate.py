"""From votes to the preference data set: aggregate annotators, drop ties, contradictions and cycles.

Order of the filters: pairs with no vote are "unlabelled"; a pair whose tie votes outnumber each
side's is a "tie"; a pair whose decisive (A/B) votes split evenly or agree less than ``min_agreement``
is "contradictory"; a pair whose winner has no more votes than "tie" is a "tie"; among the remaining pairs of
one prompt, the preference graph (winner -> loser over that prompt's responses) is built and every pair whose
edge lies on a cycle is "cyclic".
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass

from lit_rlhf.collection.response_pairs import Comparison, word_count
from lit_rlhf.collection.votes import Vote

DROP_REASONS = ("unlabelled", "tie", "contradictory", "cyclic")


@dataclass(frozen=True)
class Verdict:
    """The aggregated outcome of one pair: ``winner`` is "A", "B" or None, ``status`` "kept" or a drop reason."""

    pair_id: str
    winner: str | None
    status: str
    counts: dict[str, int]


def aggregate_votes(counts: dict[str, int], min_agreement: float = 0.6) -> tuple[str | None, str]:
    """``(winner, status)`` for one pair's vote counts ``{"A": n, "B": n, "tie": n}``.

    >>> aggregate_votes({"A": 2, "B": 1, "tie": 0})
    ('A', 'kept')
    """
    n_a, n_b, n_tie = counts.get("A", 0), counts.get("B", 0), counts.get("tie", 0)
    if n_a + n_b + n_tie == 0:
        return None, "unlabelled"
    top = max(n_a, n_b)
    if top == 0 or n_tie > top:
        return None, "tie"
    if n_a == n_b or top / (n_a + n_b) < min_agreement:
        return None, "contradictory"
    if n_tie >= top:  # as many "no difference" votes as for the winner
        return None, "tie"
    return ("A" if n_a > n_b else "B"), "kept"


def strongly_connected_components(edges: Iterable[tuple[Hashable, Hashable]]) -> list[set]:
    """Tarjan's algorithm (iterative): the SCCs of a directed graph given as an edge list."""
    graph: dict = defaultdict(list)
    for u, v in edges:
        graph[u].append(v)
        graph.setdefault(v, [])
    index: dict = {}
    low: dict = {}
    on_stack: set = set()
    stack: list = []
    components: list[set] = []
    counter = 0
    for root in list(graph):
        if root in index:
            continue
        work = [(root, iter(graph[root]))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.add(member)
                        if member == node:
                            break
                    components.append(component)
            elif child not in index:
                index[child] = low[child] = counter
                counter += 1
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(graph[child])))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return components


def cyclic_edges(edges: Sequence[tuple[Hashable, Hashable]]) -> set[int]:
    """Indices of the edges that lie on some directed cycle.

    An edge u -> v is on a cycle exactly when u and v are in the same strongly connected component
    (v reaches u again); a self-loop counts as a cycle of length one.
    """
    component_of = {}
    for i, component in enumerate(strongly_connected_components(edges)):
        for node in component:
            component_of[node] = i
    return {i for i, (u, v) in enumerate(edges) if component_of[u] == component_of[v]}


def vote_counts(votes: Iterable[Vote]) -> dict[str, Counter]:
    counts: dict[str, Counter] = defaultdict(Counter)
    for v in votes:
        counts[v.pair_id][v.choice] += 1
    return counts


def filter_pairs(
    pairs: Sequence[Comparison], votes: Iterable[Vote], min_agreement: float = 0.6, drop_cycles: bool = True
) -> list[Verdict]:
    """One ``Verdict`` per pair, in the order of ``pairs``; see the module docstring for the rules."""
    counts = vote_counts(votes)
    verdicts: dict[str, Verdict] = {}
    for pair in pairs:
        c = counts.get(pair.pair_id, Counter())
        winner, status = aggregate_votes(c, min_agreement)
        verdicts[pair.pair_id] = Verdict(pair.pair_id, winner, status, {k: c.get(k, 0) for k in ("A", "B", "tie")})
    if drop_cycles:
        by_prompt: dict[str, list[Comparison]] = defaultdict(list)
        for pair in pairs:
            if verdicts[pair.pair_id].status == "kept":
                by_prompt[pair.prompt].append(pair)
        for group in by_prompt.values():
            edges = [_edge(p, verdicts[p.pair_id].winner) for p in group]
            for i in cyclic_edges(edges):
                v = verdicts[group[i].pair_id]
                verdicts[v.pair_id] = Verdict(v.pair_id, None, "cyclic", v.counts)
    return [verdicts[p.pair_id] for p in pairs]


def _edge(pair: Comparison, winner: str) -> tuple[str, str]:
    # Nodes are the responses' normalised text, so a response sampled twice is one node.
    a, b = " ".join(pair.response_a.split()), " ".join(pair.response_b.split())
    return (a, b) if winner == "A" else (b, a)


def preference_rows(
    pairs: Sequence[Comparison], verdicts: Sequence[Verdict], votes: Iterable[Vote], provenance: dict | None = None
) -> list[dict]:
    """The reward model's rows: prompt, chosen, rejected, category, chosen_len, rejected_len, votes, provenance.

    ``votes`` holds counts oriented to the row (``chosen``/``rejected``/``tie``); lengths are in words.
    """
    annotators: dict[str, set] = defaultdict(set)
    sources: dict[str, set] = defaultdict(set)
    for v in votes:
        annotators[v.pair_id].add(v.annotator)
        sources[v.pair_id].add(v.source)
    rows = []
    for pair, verdict in zip(pairs, verdicts):
        if verdict.status != "kept":
            continue
        a_wins = verdict.winner == "A"
        chosen, rejected = (pair.response_a, pair.response_b) if a_wins else (pair.response_b, pair.response_a)
        n_win, n_lose = (
            (verdict.counts["A"], verdict.counts["B"]) if a_wins else (verdict.counts["B"], verdict.counts["A"])
        )
        rows.append(
            {
                "prompt": pair.prompt,
                "chosen": chosen,
                "rejected": rejected,
                "category": pair.category,
                "chosen_len": word_count(chosen),
                "rejected_len": word_count(rejected),
                "votes": {"chosen": n_win, "rejected": n_lose, "tie": verdict.counts["tie"]},
                "provenance": {
                    **(provenance or {}),
                    "pair_id": pair.pair_id,
                    "checkpoint": pair.meta.get("checkpoint", (provenance or {}).get("checkpoint", "")),
                    "annotators": sorted(annotators[pair.pair_id]),
                    "sources": sorted(sources[pair.pair_id]),
                    "length_unit": "words",
                },
            }
        )
    return rows


def drop_report(verdicts: Sequence[Verdict]) -> dict:
    statuses = Counter(v.status for v in verdicts)
    return {
        "pairs": len(verdicts),
        "kept": statuses.get("kept", 0),
        "dropped": {reason: statuses.get(reason, 0) for reason in DROP_REASONS},
    }
