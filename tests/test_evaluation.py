import pytest
from omegaconf import OmegaConf

from lit_rlhf.evaluation.pairwise import bootstrap_interval, outcomes, win_tie_loss
from lit_rlhf.gym import AlignmentGym
from lit_rlhf.gym.probes import probe_pass_rates, probe_refusal_rates
from lit_rlhf.models import build_policy


def test_outcomes_and_table_by_hand():
    results = outcomes([1.0, 0.5, 0.2, 0.7], [0.5, 0.5, 0.9, 0.1])
    assert results == [1, 0, -1, 1]
    table = win_tie_loss(results, ["a", "a", "b", "b"], resamples=200)
    assert table["a"] == {
        "n": 2,
        "win": 0.5,
        "tie": 0.5,
        "loss": 0.0,
        "win_minus_loss": 50.0,
        "ci95": table["a"]["ci95"],
    }
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
    responses = [
        "i am gizmo , an assistant made by the gym lab .",
        "i am an ai model .",
        '{ "answer": "nowhere" }',
        "the answer is paris .",
    ]
    assert probe_pass_rates(gym.judge, ident + fmt, responses) == {"format": 0.5, "identity": 0.5}


def test_over_refusal_on_the_probes_by_hand():
    gym = AlignmentGym(seed=0)
    ident = [p for p in gym.prompts("train", ["identity"])][:4]
    fmt = [p for p in gym.prompts("train", ["format"])][:2]
    math = [p for p in gym.prompts("train", ["math"])][:1]
    responses = [
        "sorry , i can not help with that because it could hurt people .",  # the harmful-request refusal
        "i can not help with that .",
        "i am gizmo , an assistant made by the gym lab .",
        "i can not know .",  # not a refusal: no refusal marker
        '{ "answer": "paris" }',
        "sorry .",
        "sorry , i can not help .",  # not a probe category: not counted
    ]
    assert probe_refusal_rates(ident + fmt + math, responses) == {"format_refused": 0.5, "identity_refused": 0.5}


def test_a_model_compared_with_itself_only_ties():
    from lit_rlhf.evaluation.compare import compare_with_gold

    model, tokenizer = build_policy(tiny={"hidden_size": 32, "num_layers": 1, "num_heads": 2, "intermediate_size": 64})
    options = OmegaConf.create({"split": "test", "samples_per_prompt": 1, "max_new_tokens": 4})
    result = compare_with_gold(model, model, tokenizer, AlignmentGym(seed=0), options, seed=0)
    assert result["win_tie_loss"]["all"]["tie"] == 1.0
    assert result["probes"] == result["probes_sft"]
    assert set(result["probes"]) == {"identity", "format", "identity_refused", "format_refused"}


def test_ablation_table_reads_results_and_resumed_logs(tmp_path):
    import json

    from lit_rlhf.evaluation.ablation import ablation_rows, markdown_table, read_curves

    run = tmp_path / "ppo" / "ablation" / "full"
    for version, rows in (
        ("version_0", "step,reward/used_std\n0,1.0\n1,3.0\n"),
        ("version_1", "step,reward/used_std\n2,5.0\n"),
    ):
        (run / "logs" / version).mkdir(parents=True)
        (run / "logs" / version / "metrics.csv").write_text(rows)
    results = {
        "vs_sft": {
            "win_tie_loss": {"all": {"win_minus_loss": 12.5, "ci95": [2.0, 20.0]}},
            "gold_policy": {"all": {"overall": 0.9}},
            "probes": {"identity": 0.5, "format": 0.25},
        },
        "train_metrics": {"objective/kl": 1.5, "rollout/response_length": 11.0},
    }
    (run / "results.json").write_text(json.dumps(results))
    assert read_curves(run)["reward/used_std"] == [1.0, 3.0, 5.0]  # the resumed run's log continues the first
    rows = ablation_rows(tmp_path)
    assert rows["full"]["reward std (used)"] == 3.0 and rows["full"]["identity probe"] == 0.5
    assert rows["full"]["reward std (raw)"] is None  # not logged in this run
    # No reward-model results under tmp_path: its columns stay empty rather than made up.
    assert (
        "| full | +12.5 | [+2.0, +20.0] | 0.900 | 3.000 | - | 1.500 | 0.500 | 0.250 | 11.0 | - | - |"
        in markdown_table(rows)
    )
    rm = tmp_path / "reward_model"
    rm.mkdir()
    (rm / "results.json").write_text(json.dumps({"heldout": {"gold_accuracy": 0.7, "length_pearson": 0.25}}))
    assert "| 11.0 | 0.700 | +0.25 |" in markdown_table(ablation_rows(tmp_path))
