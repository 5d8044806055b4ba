from collections import Counter

import pytest

from lit_rlhf.collection.prompt_selection import (
    GymQualityScorer,
    HeuristicQualityScorer,
    Prompt,
    PromptQuality,
    jaccard,
    noisy_usage_log,
    normalized_words,
    select_prompts,
    shingles,
)


def P(text, category="math"):
    return Prompt(text, category)


def test_short_and_exact_duplicates_are_dropped_and_first_is_kept():
    prompts = [P("what is 3 plus 4 ?"), P("hi"), P("What  is 3 plus 4?"), P("ok ?")]
    kept, report = select_prompts(prompts, min_words=3, near_duplicate_threshold=None)
    assert kept == [prompts[0]]
    assert report.as_dict()["dropped_total"] == {"too_short": 2, "duplicate": 1}


def test_near_duplicates_use_bigrams_so_reordered_numbers_stay():
    a, b = normalized_words("what is 3 plus 4 ?"), normalized_words("what is 4 plus 3 ?")
    assert jaccard(shingles(a), shingles(b)) < 0.2  # word sets are equal, bigrams are not
    prompts = [P("what is 3 plus 4 ?"), P("what is 4 plus 3 ?"), P("what is 3 plus 4 ? ?")]
    kept, report = select_prompts(prompts, near_duplicate_threshold=0.8)
    assert kept == prompts[:2]
    assert report.dropped["near_duplicate"] == Counter({"math": 1})


def test_near_duplicates_are_only_checked_within_a_category():
    prompts = [P("describe the ocean at night now", "writing"), P("describe the ocean at night now !", "math")]
    kept, _ = select_prompts(prompts, near_duplicate_threshold=0.5)
    assert kept == prompts


class FixedScorer:
    def __init__(self, scores):
        self.scores = scores

    def score(self, texts):
        return [self.scores[t] for t in texts]


def test_pluggable_scorer_drops_on_the_lowest_criterion():
    prompts = [P("aaa bbb ccc"), P("ddd eee fff")]
    scorer = FixedScorer({"aaa bbb ccc": PromptQuality(0.9, 0.9, 0.1), "ddd eee fff": PromptQuality(0.6, 0.7, 0.9)})
    kept, report = select_prompts(prompts, scorer=scorer, min_quality=0.5)
    assert kept == [prompts[1]]
    assert report.as_dict()["dropped_total"] == {"low_quality": 1}


def test_scorer_returning_wrong_count_is_an_error():
    with pytest.raises(ValueError, match="returned 0 scores for 1"):
        select_prompts([P("aaa bbb ccc")], scorer=type("Empty", (), {"score": lambda self, texts: []})())


def test_heuristic_and_gym_scorers():
    h = HeuristicQualityScorer()
    assert h.score_one("what is the capital of france ?").lowest == 1.0
    assert h.score_one("aaaaaa bbbbbbb").semantic_clarity == 0.0
    gym = GymQualityScorer()
    clear, unknown = gym.score(["what is 3 plus 4 ?", "potato carpet engine ?"])
    assert clear.lowest == 1.0 and unknown.answerability == 0.0


def test_category_cap_and_balance_are_seeded_and_counted():
    prompts = [P(f"what is {i} plus 1 ?", "math") for i in range(6)] + [
        P(f"write about {w} now", "writing") for w in ("sea", "sky")
    ]
    kept, report = select_prompts(prompts, max_per_category=3, seed=1)
    assert Counter(p.category for p in kept) == {"math": 3, "writing": 2}
    assert report.dropped["category_cap"] == Counter({"math": 3})
    again, _ = select_prompts(prompts, max_per_category=3, seed=1)
    assert again == kept
    balanced, report = select_prompts(prompts, balance=True)
    assert Counter(p.category for p in balanced) == {"math": 2, "writing": 2}
    assert report.as_dict()["before"] == {"math": 6, "writing": 2}
    assert report.as_dict()["after"] == {"math": 2, "writing": 2}


def test_noisy_log_is_cleaned_back_to_gym_prompts():
    from lit_rlhf.gym import AlignmentGym

    gym_prompts = [Prompt(p.text, p.category) for p in AlignmentGym(0).prompts("val")]
    log = noisy_usage_log(gym_prompts, share=0.3, seed=0)
    assert len(log) > len(gym_prompts)
    kept, report = select_prompts(log, scorer=GymQualityScorer())
    assert kept == gym_prompts  # every injected prompt is caught, no original is lost
    assert sum(report.as_dict()["dropped_total"].values()) == len(log) - len(gym_prompts)
