"""A real-format HH-RLHF file (see conftest.py) through the reader and through the reward-model stage."""

import json

import pytest

from lit_rlhf.cli.train import run_command
from lit_rlhf.data.errors import ConfigError, DataError
from lit_rlhf.data.preference_files import read_preferences
from lit_rlhf.run import train

SMALL_MODEL = ["debug=fast", "model.tiny.num_layers=1", "model.tiny.hidden_size=32", "model.tiny.intermediate_size=64"]


def test_hh_rows_with_an_empty_reply_or_a_broken_transcript_are_skipped_and_counted_by_default(hh_small):
    rows = read_preferences(hh_small.path)
    assert len(rows) == hh_small.good_rows and all(r["chosen"] and r["rejected"] for r in rows)
    report = rows.report
    assert report.kept == hh_small.good_rows
    assert dict(report.counts) == {reason: len(lines) for reason, lines in hh_small.bad_lines.items()}
    for reason, lines in hh_small.bad_lines.items():
        assert report.examples[reason] == [f"{hh_small.path}:{line}" for line in lines]
    assert report.as_dict()["by_reason"] == dict(report.counts)


def test_hh_rows_raise_with_file_and_line_when_asked(hh_small):
    first_bad = min(line for lines in hh_small.bad_lines.values() for line in lines)
    message = rf"^{hh_small.path}:{first_bad}: field 'chosen': final assistant reply is empty"
    with pytest.raises(DataError, match=message):
        read_preferences(hh_small.path, on_error="raise")


def test_jsonl_files_still_raise_on_the_first_bad_row_by_default(tmp_path):
    path = tmp_path / "prefs.jsonl"
    path.write_text(
        json.dumps({"prompt": "hi", "chosen": "a .", "rejected": "b ."})
        + "\n"
        + json.dumps({"prompt": "hi", "chosen": "", "rejected": "b ."})
        + "\n"
    )
    with pytest.raises(DataError, match=rf"^{path}:2: field 'chosen': is empty"):
        read_preferences(path)


def test_max_rows_reads_the_first_usable_rows(hh_small):
    everything = read_preferences(hh_small.path)
    first = read_preferences(hh_small.path, max_rows=5)
    assert first == everything[:5]
    assert first.report.kept == 5 and "max_rows" in first.report.summary()
    # The fifth usable row comes after the first empty reply: it was read and counted, later ones were not.
    assert sum(first.report.counts.values()) == 1


def test_sample_draws_seeded_rows_in_file_order(hh_small):
    everything = read_preferences(hh_small.path)
    sampled = read_preferences(hh_small.path, sample=4, seed=0)
    assert len(sampled) == 4 and sampled.report.kept == 4
    positions = [everything.index(row) for row in sampled]
    assert positions == sorted(positions)  # a subset, in file order
    assert read_preferences(hh_small.path, sample=4, seed=0) == sampled
    assert any(read_preferences(hh_small.path, sample=4, seed=s) != sampled for s in (1, 2, 3))
    assert "4 sampled of 8 usable rows, seed 0" in sampled.report.summary()
    capped = read_preferences(hh_small.path, max_rows=6, sample=3, seed=0)
    assert len(capped) == 3 and all(row in everything[:6] for row in capped)


@pytest.mark.parametrize(
    "option, value, message",
    [
        ("max_rows", 0, "max_rows must be a positive integer or null, got 0"),
        ("max_rows", -3, "max_rows must be a positive integer or null, got -3"),
        ("max_rows", "10", "max_rows must be a positive integer or null, got '10'"),
        ("sample", True, "sample must be a positive integer or null, got True"),
        ("sample", 2.5, "sample must be a positive integer or null, got 2.5"),
        ("sample", 9, "sample=9 but .*train.jsonl.gz has only 8 usable rows"),
        ("on_error", "ignore", "on_error must be 'auto', 'raise' or 'skip', got 'ignore'"),
    ],
)
def test_bad_row_options_are_config_errors(hh_small, option, value, message):
    with pytest.raises(ConfigError, match=message):
        read_preferences(hh_small.path, **{option: value})


def documented_command(compose_config, hh_small, *extra):
    """`lit-rlhf-train experiment=gym_reward_model data=preferences data.train.path=hh/train.jsonl.gz`, shrunk."""
    return compose_config(
        "experiment=gym_reward_model", "data=preferences", f"data.train.path={hh_small.path}", *SMALL_MODEL, *extra
    )


def test_documented_hh_command_trains_and_reports_the_skipped_rows(compose_config, hh_small, tmp_path):
    cfg = documented_command(compose_config, hh_small)
    with pytest.warns(UserWarning, match=rf"train data: kept 8 rows, skipped 3: .*{hh_small.path}:9"):
        train(cfg)
    results = json.loads((tmp_path / "reward_model" / "results.json").read_text())
    read = results["rows_read"]["train"]
    assert read["kept"] == hh_small.good_rows
    assert read["by_reason"] == {reason: len(lines) for reason, lines in hh_small.bad_lines.items()}
    assert read["examples"]["unparseable transcript"] == [f"{hh_small.path}:9"]
    balance = results["length_balance"]
    assert balance["pairs_before"] == results["pairs"]["train"] + balance["dropped"]
    assert results["gold_eval"].startswith("skipped")  # HH prompts are not gym prompts


def test_documented_hh_command_with_a_row_cap_and_one_line_errors(compose_config, hh_small, tmp_path):
    cfg = documented_command(compose_config, hh_small, "data.train.max_rows=6", "data.length_balance=null")
    train(cfg)
    results = json.loads((tmp_path / "reward_model" / "results.json").read_text())
    assert results["rows_read"]["train"]["kept"] == 6
    assert results["pairs"]["train"] + results["pairs"]["val"] == 6

    strict = documented_command(compose_config, hh_small, "data.train.on_error=raise")
    with pytest.raises(SystemExit, match=rf"^lit-rlhf-train: error: {hh_small.path}:5: field 'chosen': final"):
        run_command(strict, "lit-rlhf-train")
    bad_cap = documented_command(compose_config, hh_small, "data.train.max_rows=-1")
    with pytest.raises(SystemExit, match="^lit-rlhf-train: error: max_rows must be a positive integer or null"):
        run_command(bad_cap, "lit-rlhf-train")
