import pytest

from lit_rlhf.collection.aggregate import (
    aggregate_votes,
    cyclic_edges,
    drop_report,
    filter_pairs,
    preference_rows,
    strongly_connected_components,
)
from lit_rlhf.collection.response_pairs import Comparison
from lit_rlhf.collection.votes import Vote, check_ratings


@pytest.mark.parametrize(
    "counts, expected",
    [
        ({"A": 2, "B": 1}, ("A", "kept")),
        ({"A": 0, "B": 3, "tie": 1}, ("B", "kept")),
        ({"A": 1, "B": 1}, (None, "contradictory")),
        ({"A": 3, "B": 2}, ("A", "kept")),  # 3/5 = 0.6 agreement
        ({"A": 4, "B": 3}, (None, "contradictory")),  # 4/7 < 0.6
        ({"A": 1, "tie": 1}, (None, "tie")),
        ({"A": 2, "tie": 1}, ("A", "kept")),
        ({"A": 1, "B": 1, "tie": 1}, (None, "contradictory")),
        ({"A": 1, "B": 1, "tie": 2}, (None, "tie")),
        ({"tie": 2}, (None, "tie")),
        ({}, (None, "unlabelled")),
    ],
)
def test_aggregate_votes(counts, expected):
    assert aggregate_votes(counts, min_agreement=0.6) == expected


def test_scc_on_hand_made_graph():
    # 1 -> 2 -> 3 -> 1 is a cycle; 3 -> 4 -> 5 is not; 5 <-> 6 is a two-cycle.
    edges = [(1, 2), (2, 3), (3, 1), (3, 4), (4, 5), (5, 6), (6, 5)]
    components = sorted(sorted(c) for c in strongly_connected_components(edges))
    assert components == [[1, 2, 3], [4], [5, 6]]
    assert cyclic_edges(edges) == {0, 1, 2, 5, 6}


def test_acyclic_graph_and_self_loop():
    assert cyclic_edges([("a", "b"), ("b", "c"), ("a", "c")]) == set()
    assert cyclic_edges([("a", "a"), ("a", "b")]) == {0}
    assert cyclic_edges([]) == set()


def test_long_chain_does_not_recurse():
    edges = [(i, i + 1) for i in range(5000)] + [(5000, 0)]
    assert len(cyclic_edges(edges)) == 5001


def _pairs():
    # Three responses x, y, z to one prompt: all three pairs, and a fourth pair on another prompt.
    return [
        Comparison("p1", "q", "math", "x", "y"),
        Comparison("p2", "q", "math", "y", "z"),
        Comparison("p3", "q", "math", "z", "x"),
        Comparison("p4", "r", "writing", "a b c", "d"),
    ]


def _votes(choices):
    return [Vote(pid, f"ann{i}", c) for pid, cs in choices.items() for i, c in enumerate(cs)]


def test_cycle_is_dropped_and_reasons_counted():
    # x > y, y > z, z > x: a cycle; p4 is a tie.
    votes = _votes({"p1": "AA", "p2": "AA", "p3": "AA", "p4": ["tie", "tie", "A"]})
    verdicts = filter_pairs(_pairs(), votes)
    assert [v.status for v in verdicts] == ["cyclic", "cyclic", "cyclic", "tie"]
    assert drop_report(verdicts) == {
        "pairs": 4,
        "kept": 0,
        "dropped": {"unlabelled": 0, "tie": 1, "contradictory": 0, "cyclic": 3},
    }


def test_consistent_order_is_kept_and_rows_are_oriented():
    # x > y, y > z, x > z (p3 is "z vs x", B wins): transitive.
    votes = _votes({"p1": "AAB", "p2": "AA", "p3": "BB", "p4": "BB"})
    verdicts = filter_pairs(_pairs(), votes)
    assert [v.status for v in verdicts] == ["kept"] * 4
    rows = preference_rows(_pairs(), verdicts, votes, provenance={"checkpoint": "ckpt"})
    assert [(r["chosen"], r["rejected"]) for r in rows] == [("x", "y"), ("y", "z"), ("x", "z"), ("d", "a b c")]
    assert rows[0]["votes"] == {"chosen": 2, "rejected": 1, "tie": 0}
    assert rows[3]["chosen_len"] == 1 and rows[3]["rejected_len"] == 3
    assert rows[0]["provenance"]["annotators"] == ["ann0", "ann1", "ann2"]
    assert rows[0]["provenance"]["checkpoint"] == "ckpt"
    assert set(rows[0]) == {
        "prompt",
        "chosen",
        "rejected",
        "category",
        "chosen_len",
        "rejected_len",
        "votes",
        "provenance",
    }


def test_contradicting_pair_leaves_the_graph_before_the_cycle_check():
    # p3 contradicts (1-1), so the remaining edges x>y, y>z have no cycle.
    votes = _votes({"p1": "AA", "p2": "AA", "p3": "AB"})
    verdicts = filter_pairs(_pairs(), votes)
    assert [v.status for v in verdicts] == ["kept", "kept", "contradictory", "unlabelled"]


def test_ratings_validation():
    good = {"helpfulness": 5, "harmlessness": 1, "fluency": 3}
    assert check_ratings(good) == good and check_ratings({}) == {}
    with pytest.raises(ValueError, match="integer 1-5"):
        check_ratings({**good, "fluency": 6})
    with pytest.raises(ValueError, match="exactly the criteria"):
        check_ratings({"helpfulness": 3})
