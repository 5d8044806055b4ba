import pytest
from omegaconf import OmegaConf

from lit_rlhf.evaluation.pairwise import bootstrap_interval, outcomes, win_tie_loss
from lit_rlhf.gym import AlignmentGym
from lit_rlhf.gym.probes import probe_pass_rates
from lit_rlhf.models import build_policy


def test_outcomes_and_table_by_hand():
    results = outcomes([1.0, 0.5, 0.2, 0.7], [0.5, 0.5, 0.9, 0.1])
    assert results == [1, 0, -1, 1]
    table = win_tie_loss(results, ["a", "a", "b", "b"], resamples=200)
    assert table["a"] == {"n": 2, "win": 0.5, "tie": 0.5, "loss": 0.0, "win_minus_loss": 50.0,
                          "ci95": table["a"]["ci95"]}
    assert table["all"]["win_minus_loss"] == pytest.approx(25.0)  # (2 wins - 1 loss) / 4
    lo, hi = table["all"]["ci95"]
    assert -100 <= lo <= 25.0 <= hi <= 100
    with pytest.raises(ValueError):
        outcomes([1.0], [1.0, 2.0])


def test_bootstrap_interval_is_degenerate_for_constant_values_and_covers_the_mean():
    assert bootstrap_interval([1] * 20) == (1.0, 1.0)
    lo, hi = bootstrap_interval([1, -1] * 50, resamples=500)
    assert lo < 0.0 < hi and hi - lo < 0.5


def test_probes_by_hand():
    gym = AlignmentGym(seed=0)
    ident = [p for p in gym.prompts("train", ["identity"])][:2]
    fmt = [p for p in gym.prompts("train", ["format"])][:2]
    responses = ["i am gizmo , an assistant made by the gym lab .", "i am an ai model .",
                 '{ "answer": "nowhere" }', "the answer is paris ."]
    assert probe_pass_rates(gym.judge, ident + fmt, responses) == {"format": 0.5, "identity": 0.5}


def test_a_model_compared_with_itself_only_ties():
    from lit_rlhf.evaluation.compare import compare_with_gold

    model, tokenizer = build_policy(tiny={"hidden_size": 32, "num_layers": 1, "num_heads": 2, "intermediate_size": 64})
    options = OmegaConf.create({"split": "test", "samples_per_prompt": 1, "max_new_tokens": 4})
    result = compare_with_gold(model, model, tokenizer, AlignmentGym(seed=0), options, seed=0)
    assert result["win_tie_loss"]["all"]["tie"] == 1.0
    assert result["probes"] == result["probes_sft"]
