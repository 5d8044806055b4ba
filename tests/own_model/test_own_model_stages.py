"""Every stage and the pipeline on a user's own model and files, through the generic experiments alone: a
locally saved tiny Qwen2 with its own BPE tokenizer, hand-written JSONL, no gym part switched off by hand."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lit_rlhf import compose, train

from .conftest import QUICK, SHRINK, stage_inputs


def _results(path) -> dict:
    return json.loads((path / "results.json").read_text())


# Keys a generic experiment carries that its run reads nowhere, and why each is meant to do nothing there.
# Every other key of the composed config must be read (tests/key_reads.py): an override that composes but
# reaches nothing fails `test_every_key_of_a_generic_experiment_is_read_or_documented_inert`.
INERT = {
    "*": {"hydra": "Hydra's own settings"},
    "sft": {
        "sft.eval.max_new_tokens": "compares only with sft.eval.reward_model set",
        "sft.eval.samples_per_prompt": "compares only with sft.eval.reward_model set",
    },
    "dpo": {
        "dpo.pairs.categories": "dpo.pairs.source=policy only",
        "dpo.pairs.decoding": "source=policy only",
        "dpo.pairs.n": "source=policy only",
    },
    "eval": {
        "model": "evaluation loads the checkpoints named under eval.*",
        "trainer": "evaluation trains nothing",
        "strategy": "evaluation trains nothing",
        "resume": "evaluation trains nothing",
        "callbacks": "evaluation trains nothing",
        "eval.human": "eval.judge=human only",
        "eval.split": "gym prompts only",
    },
}


def _train(ov: list[str], reads: dict, config_name: str = "train") -> None:
    """``train`` on the composed config, noting which of its keys the run read (under the experiment's name)."""
    import sys

    from key_reads import recording_reads

    cfg = compose(ov, config_name=config_name)
    with recording_reads([m for name, m in list(sys.modules.items()) if name.startswith("lit_rlhf")]) as read:
        train(cfg)
    reads[ov[0].removeprefix("experiment=")] = (cfg, read)


@pytest.fixture(scope="module")
def runs(own_files, tmp_path_factory):
    """The five generic experiments in order, each reading the previous ones' outputs; ``(artifacts, reads)``."""
    art = tmp_path_factory.mktemp("own_artifacts")
    reads: dict = {}
    for stage in ("sft", "reward_model", "ppo", "dpo"):
        _train(
            [
                f"experiment={stage}",
                *stage_inputs(stage, own_files, art),
                *SHRINK[stage],
                f"paths.artifacts={art}",
                *QUICK,
            ],
            reads,
        )
    _train(
        ["experiment=eval", *stage_inputs("eval", own_files, art), *SHRINK["eval"], f"paths.artifacts={art}"],
        reads,
        "eval",
    )
    return art, reads


@pytest.mark.parametrize("experiment", ["sft", "reward_model", "ppo", "dpo", "eval"])
def test_every_key_of_a_generic_experiment_is_read_or_documented_inert(runs, experiment):
    from key_reads import unread

    cfg, reads = runs[1][experiment]
    inert = tuple({**INERT["*"], **INERT.get(experiment, {})})
    assert unread(cfg, reads, skip=inert) == []


def test_every_stage_writes_a_plain_hf_checkpoint_of_the_users_architecture(runs):
    runs = runs[0]
    from transformers import AutoConfig

    for stage in ("sft", "reward_model", "ppo", "dpo"):
        assert AutoConfig.from_pretrained(runs / stage / "checkpoint").model_type == "qwen2"


def test_no_stage_consults_the_gym(runs):
    runs = runs[0]
    for stage in ("sft", "reward_model", "ppo", "dpo", "eval"):
        text = (runs / stage / "results.json").read_text()
        assert "gold" not in text, f"{stage} reported a gym score"


def test_rl_stages_end_with_a_reward_model_comparison_on_held_out_prompts(runs, own_files):
    runs = runs[0]
    ppo = _results(runs / "ppo")
    assert ppo["prompt_file"]["train"] + ppo["prompt_file"]["heldout"] == 24 and ppo["prompt_file"]["heldout"] >= 2
    for stage in ("ppo", "dpo"):
        comparison = _results(runs / stage)["vs_start"]
        assert comparison["judge"] == "reward_model" and comparison["prompts"] >= 1
        table = comparison["win_tie_loss"]["all"]
        assert table["n"] == comparison["prompts"] and abs(table["win"] + table["tie"] + table["loss"] - 1) < 1e-9


@pytest.mark.parametrize(
    "estimator",
    [
        ["module.config.advantage_estimator=grpo", "module.config.samples_per_prompt=2"],
        ["module.config.advantage_estimator=remax", "module.config.kl_penalty=loss"],
    ],
    ids=["grpo", "remax"],
)
def test_critic_free_ppo_runs_from_the_command_line_on_ones_own_model(runs, own_files, estimator):
    art = runs[0]
    cfg = compose(
        ["experiment=ppo", *stage_inputs("ppo", own_files, art), *SHRINK["ppo"], f"paths.artifacts={art}", *QUICK]
        + [*estimator, f"run_suffix=/{estimator[0].split('=')[1]}"]
    )
    with pytest.warns(UserWarning, match="param_groups.critic is unused"):
        results = train(cfg)
    metrics = results["train_metrics"]
    assert "policy/loss" in metrics and not any(k.startswith("critic/") for k in metrics)
    assert results["vs_start"]["win_tie_loss"]["all"]["n"] >= 1


def test_reward_parts_from_the_command_line_are_each_logged(runs, own_files):
    art = runs[0]
    parts = (
        "ppo.reward_parts={reward_model: {weight: 1.0}, "
        "length: {_target_: lit_rlhf.ppo.reward_parts.LengthPenalty, per_word: 0.05, weight: 2.0}}"
    )
    cfg = compose(
        ["experiment=ppo", *stage_inputs("ppo", own_files, art), *SHRINK["ppo"], f"paths.artifacts={art}", *QUICK]
        + [parts, "run_suffix=/parts"]
    )
    metrics = train(cfg)["train_metrics"]
    assert {"reward/part/reward_model", "reward/part/length"} <= set(metrics)
    assert metrics["reward/part/length"] <= 0


def test_the_evaluation_compares_the_candidates_by_the_reward_model(runs):
    runs = runs[0]
    results = _results(runs / "eval")
    assert results["judge"] == "reward_model" and set(results["pairwise"]) == {"ppo", "dpo"}
    assert (runs / "eval" / "report.md").exists()


def test_the_pipeline_runs_on_ones_own_model_and_files(own_files, tmp_path):
    import lit_rlhf.conf
    import yaml

    from lit_rlhf.pipeline import run_pipeline

    plan = yaml.safe_load((Path(lit_rlhf.conf.__file__).parent / "pipeline_files.yaml").read_text())
    for stage in plan["stages"]:
        stage["overrides"] += SHRINK[stage["name"]]
    (tmp_path / "plan.yaml").write_text(yaml.safe_dump(plan))
    f = own_files
    inputs = [
        f"inputs.model={f['base']}",
        f"inputs.sft_train={f['sft_train']}",
        f"inputs.sft_val={f['sft_val']}",
        f"inputs.preferences={f['prefs']}",
        f"inputs.prompts={f['prompts']}",
        f"inputs.eval_prompts={f['heldout']}",
    ]
    summaries = run_pipeline([*inputs, f"paths.artifacts={tmp_path / 'art'}", *QUICK], plan=str(tmp_path / "plan.yaml"))
    assert list(summaries) == ["sft", "reward_model", "ppo", "dpo", "eval"]
    assert set(summaries["eval"]["pairwise"]) == {"ppo", "dpo"} and summaries["eval"]["judge"] == "reward_model"
    assert "vs_start" in summaries["ppo"] and "gold" not in json.dumps(summaries)


def test_the_files_plan_names_the_inputs_it_is_missing(capsys):
    from lit_rlhf.pipeline import main

    with pytest.raises(SystemExit) as exit_info:
        main(["--plan", "files", "inputs.model=somewhere"])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert "inputs.sft_train=..." in error and "inputs.model" not in error.split("needs", 1)[1]
    with pytest.raises(SystemExit):
        main(["--plan", "files", "inputs.no_such_input=1"])
    assert "no_such_input" in capsys.readouterr().err


def test_a_gym_experiment_with_ones_own_prompts_is_refused_before_training(own_files, compose_config):
    from lit_rlhf.data.errors import ConfigError
    from lit_rlhf.ppo.stage import run

    cfg = compose_config("experiment=gym_ppo", f"ppo.prompts.path={own_files['prompts']}")
    with pytest.raises(ConfigError, match="use experiment=ppo"):
        run(cfg)  # fails before a model is loaded: the gym's SFT checkpoint does not even exist here


def test_a_null_sft_file_path_names_the_way_out():
    from lit_rlhf.data.errors import ConfigError
    from lit_rlhf.sft.data import read_sft_jsonl

    with pytest.raises(ConfigError, match="data.val=null"):
        read_sft_jsonl(None)


@pytest.mark.parametrize("stage", ["ppo", "dpo"])
def test_an_unknown_judge_is_refused_before_training(compose_config, stage):
    import importlib

    from lit_rlhf.data.errors import ConfigError

    inputs = {"ppo": ["ppo.reward_model=./none", "ppo.prompts.path=./none"], "dpo": ["dpo.pairs.path=./none"]}
    cfg = compose_config(
        f"experiment={stage}", "model.source=./no/such/model", *inputs[stage], f"{stage}.eval.judge=human"
    )
    with pytest.raises(ConfigError, match=f"{stage}.eval.judge must be one of"):
        importlib.import_module(f"lit_rlhf.{stage}.stage").run(cfg)  # before the missing model is looked for
