"""Prompts without a category ("all") are counted once in the pairwise tables."""

import pytest

from lit_rlhf.evaluation.pairwise import bootstrap_interval, by_category, win_tie_loss


def test_prompts_without_a_category_are_counted_once():
    table = win_tie_loss([1, 0, -1, 1], ["all"] * 4)
    assert list(table) == ["all"]
    assert table["all"]["n"] == 4 and table["all"]["win_minus_loss"] == pytest.approx(25.0)
    lo, hi = table["all"]["ci95"]
    assert [lo, hi] == [100 * x for x in bootstrap_interval([1, 0, -1, 1])]  # the interval of the four outcomes
    # A mean of 4 resampled outcomes in {-1, 0, 1} is a multiple of 1/4, i.e. of 25 points (of 8: 12.5 points).
    assert lo % 25 == 0 and hi % 25 == 0
    assert [lo, hi] == [-50.0, 100.0]


def test_mixed_categories_keep_every_value_once_in_all():
    groups = by_category([1, -1, 0, 1, 1], ["math", "all", "writing", "math", "all"])
    assert groups == {"all": [1, -1, 0, 1, 1], "math": [1, 1], "writing": [0]}
    table = win_tie_loss([1, -1, 0, 1, 1], ["math", "all", "writing", "math", "all"], resamples=200)
    assert table["all"]["n"] == 5 and table["math"]["n"] == 2
