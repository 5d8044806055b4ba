"""A reward model no better than a coin on its held-out pairs is flagged: an interval, a warning, a report line."""

from __future__ import annotations

import math

import pytest

from lit_rlhf.evaluation.report import reward_model_section
from lit_rlhf.reward.metrics import accuracy_interval
from lit_rlhf.reward.stage import warn_if_near_chance


def test_wilson_interval_by_hand():
    # 0.6 on 100 pairs, z = 1.96: centre (0.6 + 0.019208) / 1.038416 = 0.596301,
    # half 1.96 * sqrt(0.0024 + 0.00009604) / 1.038416 = 0.094300
    lo, hi = accuracy_interval(0.6, 100)
    assert lo == pytest.approx(0.502001, abs=1e-5) and hi == pytest.approx(0.690600, abs=1e-5)
    assert all(math.isnan(x) for x in accuracy_interval(0.5, 0))  # no pairs, no interval


def test_gym_9s_reward_model_is_flagged():
    gym9 = {"accuracy": 0.5421686768531799, "pairs": 166}  # 90 of 166 held-out labels
    with pytest.warns(UserWarning, match=r"held-out accuracy 0.542 on 166 pairs.*not above chance"):
        warn_if_near_chance(gym9)
    assert gym9["accuracy_ci95"][0] < 0.5 < gym9["accuracy_ci95"][1]


def test_gym_0s_reward_model_is_not_flagged(recwarn):
    gym0 = {"accuracy": 0.673, "pairs": 168}
    warn_if_near_chance(gym0)
    assert gym0["accuracy_ci95"][0] > 0.5
    assert not [w for w in recwarn if "chance" in str(w.message)]


def test_the_report_says_so():
    near = reward_model_section({"heldout": {"accuracy": 0.54, "pairs": 166, "accuracy_ci95": [0.46, 0.62]}})
    assert "0.540 [0.46, 0.62]" in "\n".join(near) and "not above chance" in "\n".join(near)
    fine = reward_model_section({"heldout": {"accuracy": 0.67, "pairs": 168, "accuracy_ci95": [0.60, 0.74]}})
    assert "not above chance" not in "\n".join(fine)
    old = reward_model_section({"heldout": {"accuracy": 0.67, "pairs": 168}})  # results written before the interval
    assert "0.670;" in "\n".join(old)
