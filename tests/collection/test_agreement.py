import math

import pytest

from lit_rlhf.collection.agreement import (
    agreement_report,
    bucket_of,
    cohen_kappa,
    fit_length_bias,
    fleiss_kappa,
    longer_win_rates,
)
from lit_rlhf.collection.votes import Vote


def test_cohen_kappa_hand_worked():
    # 10 items: observed agreement 0.7; rater 1 says A 5 times, rater 2 says A 6 times:
    # p_e = 0.5*0.6 + 0.5*0.4 = 0.5, kappa = (0.7 - 0.5) / 0.5 = 0.4.
    r1 = list("AAAAABBBBB")
    r2 = list("AAAABAABBB")
    assert sum(a == b for a, b in zip(r1, r2)) == 7
    assert cohen_kappa(r1, r2) == pytest.approx(0.4)
    assert cohen_kappa(r1, r1) == pytest.approx(1.0)
    assert cohen_kappa(list("AB"), list("BA")) == pytest.approx(-1.0)
    assert math.isnan(cohen_kappa(list("AAA"), list("AAA")))
    with pytest.raises(ValueError):
        cohen_kappa(["A"], [])


def test_cohen_kappa_matches_sklearn_formula_on_three_labels():
    r1 = ["A", "B", "tie", "A", "A", "B"]
    r2 = ["A", "B", "A", "tie", "A", "A"]
    # p_o = 3/6; marginals r1: A3 B2 T1, r2: A4 B1 T1 -> p_e = (12 + 2 + 1) / 36
    p_o, p_e = 0.5, 15 / 36
    assert cohen_kappa(r1, r2) == pytest.approx((p_o - p_e) / (1 - p_e))


def test_fleiss_kappa_wikipedia_example():
    # The worked example from Fleiss (1971) as given on Wikipedia: 10 items, 14 raters, 5 categories.
    table = [
        [0, 0, 0, 0, 14],
        [0, 2, 6, 4, 2],
        [0, 0, 3, 5, 6],
        [0, 3, 9, 2, 0],
        [2, 2, 8, 1, 1],
        [7, 7, 0, 0, 0],
        [3, 2, 6, 3, 0],
        [2, 5, 3, 2, 2],
        [6, 5, 2, 1, 0],
        [0, 2, 2, 3, 7],
    ]
    assert fleiss_kappa(table) == pytest.approx(0.210, abs=1e-3)


def test_fleiss_kappa_perfect_and_invalid():
    assert fleiss_kappa([[3, 0, 0], [0, 3, 0]]) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="same number"):
        fleiss_kappa([[3, 0, 0], [1, 1, 0]])


def test_agreement_report_per_annotator():
    votes = [
        Vote(f"p{i}", a, c) for i, row in enumerate(["AAB", "BBB", "AAA", "BBA"]) for a, c in zip(("x", "y", "z"), row)
    ]
    report = agreement_report(votes, min_common=1)
    # x and y always agree; z agrees with them on 2 of 4 items: pairs agree 4 + 2 + 2 of 12.
    assert report["pairwise_agreement"] == pytest.approx(8 / 12)
    assert report["per_annotator"]["x"]["pairwise_agreement"] == pytest.approx(6 / 8)
    assert report["per_annotator"]["z"]["pairwise_agreement"] == pytest.approx(4 / 8)
    assert report["per_annotator"]["x"]["items"] == 4
    table = [[2, 1, 0], [0, 3, 0], [3, 0, 0], [1, 2, 0]]
    assert report["fleiss_kappa"] == pytest.approx(fleiss_kappa(table))
    # kappa(x, y) = 1, kappa(x, z) = kappa(y, z) = 0 (p_o = p_e = 0.5)
    assert report["cohen_kappa_mean"] == pytest.approx(1 / 3)


def test_longer_win_rates_by_bucket():
    rows = [(5, 3, "A"), (3, 5, "A"), (10, 1, "A"), (1, 30, "B"), (4, 4, "A"), (2, 9, "tie")]
    rates = longer_win_rates(rows)
    assert rates["1-2"] == {"n": 2, "longer_wins": 0.5}
    assert rates["6-10"] == {"n": 1, "longer_wins": 1.0}
    assert rates["21+"] == {"n": 1, "longer_wins": 1.0}
    assert rates["all"] == {"n": 4, "longer_wins": 0.75}
    assert bucket_of(0) is None and bucket_of(7) == "6-10"


def test_fit_length_bias_recovers_a_known_bias():
    import random

    rng = random.Random(0)
    du, dl, ya = [], [], []
    for _ in range(4000):
        u, d = rng.uniform(-1, 1), rng.randint(-20, 20)
        p = 1 / (1 + math.exp(-(u + 0.4 * d / 10) / 0.3))
        du.append(u), dl.append(d), ya.append(rng.random() < p)
    fit = fit_length_bias(du, dl, ya)
    assert fit["length_bias"] == pytest.approx(0.4, abs=0.05)
    assert fit["w_utility"] == pytest.approx(1 / 0.3, rel=0.15)
    assert math.isnan(fit_length_bias([1.0], [1], [True])["length_bias"])
