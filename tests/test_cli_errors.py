"""``lit-rlhf-train`` ends user errors (bad data, bad config values, missing files) in one line; any other
exception, a plain KeyError or ValueError included, is a bug and keeps its traceback."""

import traceback

import pytest
from hydra.errors import InstantiationException

import lit_rlhf.cli.train as cli
import lit_rlhf.run
from lit_rlhf.data.errors import ConfigError, DataError, UnknownName, UserError
from lit_rlhf.stages import get_stage


def failing_stage(error: BaseException):
    def run(cfg):
        raise error

    return run


def run_with_stage_error(compose_config, monkeypatch, error: BaseException):
    monkeypatch.setattr(lit_rlhf.run, "get_stage", lambda name: failing_stage(error))
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    return cli.run_command(compose_config("debug=fast"), "lit-rlhf-train")


@pytest.mark.parametrize(
    "error",
    [KeyError("input_ids"), ValueError("shapes [2, 3] and [3, 4] do not match"), TypeError("unsupported operand")],
    ids=["KeyError", "ValueError", "TypeError"],
)
def test_ordinary_errors_keep_their_traceback(compose_config, monkeypatch, error):
    with pytest.raises(type(error)) as raised:
        run_with_stage_error(compose_config, monkeypatch, error)
    assert raised.value is error
    frames = [frame.name for frame in traceback.extract_tb(raised.value.__traceback__)]
    assert "run" in frames  # the frame that raised is still there


def test_an_ordinary_error_inside_hydra_instantiate_keeps_its_traceback(compose_config, monkeypatch):
    wrapped = InstantiationException("Error in call to target 'x'")
    wrapped.__cause__ = ValueError("internal: a tensor had the wrong shape")
    with pytest.raises(InstantiationException):
        run_with_stage_error(compose_config, monkeypatch, wrapped)


@pytest.mark.parametrize(
    "error, line",
    [
        (DataError("missing", "prefs.jsonl", 6, "rejected"), "prefs.jsonl:6: field 'rejected': missing"),
        (ConfigError("max_rows must be a positive integer or null, got -1"), "max_rows must be a positive integer"),
        (FileNotFoundError("model path './no/such/model' does not exist"), "model path './no/such/model' does not"),
    ],
    ids=["DataError", "ConfigError", "FileNotFoundError"],
)
def test_user_errors_end_in_one_line(compose_config, monkeypatch, error, line):
    with pytest.raises(SystemExit) as exit_info:
        run_with_stage_error(compose_config, monkeypatch, error)
    message = str(exit_info.value.code)
    assert message.startswith("lit-rlhf-train: error: ") and "Traceback" not in message
    assert line in message


def test_user_errors_behind_hydra_instantiate_end_in_one_line(compose_config, monkeypatch):
    wrapped = InstantiationException("Error in call to target 'read_preferences'")
    wrapped.__cause__ = DataError("is empty", "prefs.jsonl", 3, "chosen")
    with pytest.raises(SystemExit, match=r"^lit-rlhf-train: error: prefs.jsonl:3: field 'chosen': is empty"):
        run_with_stage_error(compose_config, monkeypatch, wrapped)


def test_an_unknown_stage_is_a_one_line_config_error_and_still_a_key_error(compose_config, monkeypatch):
    with pytest.raises(KeyError, match="known stages") as raised:
        get_stage("rlhf_magic")
    assert isinstance(raised.value, UnknownName) and isinstance(raised.value, UserError)
    assert str(raised.value).startswith("unknown stage 'rlhf_magic'")  # no KeyError quotes around the message
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    with pytest.raises(SystemExit, match=r"^lit-rlhf-train: error: unknown stage 'rlhf_magic'; known stages"):
        cli.run_command(compose_config("stage=rlhf_magic"), "lit-rlhf-train")


def test_config_value_errors_from_the_code_are_user_errors(compose_config, monkeypatch):
    from lit_rlhf.models.tokenizer import build_gym_tokenizer
    from lit_rlhf.reward.data import PreferenceDataModule
    from lit_rlhf.reward.module import RewardModelModule

    rows = [{"prompt": "hi", "chosen": "a .", "rejected": "b ."}]
    with pytest.raises(ConfigError, match="batch_size must be >= 1"):
        PreferenceDataModule(build_gym_tokenizer(), rows, batch_size=0)
    with pytest.raises(ConfigError, match="prior_coef must be >= 0"):
        RewardModelModule(None, build_gym_tokenizer(), prior_coef=-1)
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    cfg = compose_config(
        "experiment=gym_reward_model",
        "debug=fast",
        "data.batch_size=0",
        "data.train.pairs_per_prompt=1",
        "data.test.pairs_per_prompt=1",
    )
    with pytest.raises(SystemExit, match=r"^lit-rlhf-train: error: batch_size must be >= 1, got 0"):
        cli.run_command(cfg, "lit-rlhf-train")
