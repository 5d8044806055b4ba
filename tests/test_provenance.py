"""Nothing stale is reused: outputs know what they were made from, and the pipeline compares."""

import json

import pytest
from omegaconf import OmegaConf

from lit_rlhf.pipeline import run_pipeline
from lit_rlhf.provenance import FINGERPRINT, changes, input_id, recipe, write_fingerprint

TINY_SFT = [
    "experiment=gym_sft",
    "debug=fast",
    "logger=none",
    "sft.eval.samples_per_prompt=1",
    "sft.eval.max_new_tokens=4",
]


def test_an_input_is_identified_by_its_run_its_content_or_its_name(tmp_path):
    data = tmp_path / "train.jsonl"
    data.write_text('{"prompt": "a", "response": "b"}\n')
    first = input_id(str(data))
    assert first.startswith("file:") and input_id(str(data)) == first
    data.write_text('{"prompt": "a", "response": "c"}\n')
    assert input_id(str(data)) != first
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    before = input_id(str(folder))
    (folder / "config.json").write_text('{"x": 1}')
    assert before.startswith("dir:") and input_id(str(folder)) != before
    assert input_id("org/some-model") == "name:org/some-model"
    # an output of a stage: the run's id, which is new each time the run finishes
    run = tmp_path / "sft"
    (run / "checkpoint").mkdir(parents=True)
    made = recipe(OmegaConf.create({"stage": "sft", "output_dir": str(run)}))
    ids = {write_fingerprint(run, made)["run_id"] for _ in range(2)}
    assert (
        len(ids) == 2
        and input_id(str(run / "checkpoint")) == f"run:{json.loads((run / FINGERPRINT).read_text())['run_id']}"
    )


def test_changes_name_config_keys_and_inputs(tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text("1\n")
    cfg = OmegaConf.create({"stage": "x", "lr": 1, "logger": {"csv": 1}, "data": {"train": {"path": str(data)}}})
    before = recipe(cfg)
    assert changes(before, recipe(cfg)) == [] and changes(None, before) == [f"no {FINGERPRINT}"]
    cfg.lr, cfg.logger.csv = 2, 5  # the logger watches a run, it does not change what it computes
    data.write_text("2\n")
    assert changes(before, recipe(cfg)) == ["lr", "input data.train.path"]


def test_a_recipe_written_before_a_key_was_untracked_still_matches():
    cfg = OmegaConf.create({"stage": "x", "lr": 1, "callbacks": {"cost": {"_target_": "a.B"}}})
    now = recipe(cfg)
    assert "callbacks.cost._target_" not in now["config"]  # watching a run's cost changes nothing it computes
    older = {**now, "config": {**now["config"], "callbacks.cost._target_": "a.B"}, "hash": "older"}
    assert changes(older, now) == []
    older["config"]["lr"] = 2
    assert changes(older, now) == ["lr"]


def test_a_stage_reruns_when_an_input_changed_in_an_earlier_invocation(tmp_path, capsys):
    """`--force sft` killed before the stages after it ran: the next run sees their input is a new SFT run."""
    plan = [
        {"name": "sft", "overrides": TINY_SFT},
        {
            "name": "sft_b",
            "needs": ["sft"],
            "overrides": [*TINY_SFT, "model=hf", f"model.source={tmp_path}/sft/checkpoint", "run_suffix=/b"],
        },
    ]
    overrides = [f"paths.artifacts={tmp_path}"]
    run_pipeline(overrides, plan=plan)
    assert run_pipeline(overrides, plan=plan)["sft_b"]["skipped"] is True
    run_pipeline(overrides, plan=plan, force=["sft"], only=["sft"])  # stopped here: sft_b not run yet
    capsys.readouterr()
    again = run_pipeline(overrides, plan=plan)
    assert again["sft"]["skipped"] is True and "checkpoint" in again["sft_b"]
    assert "input model.source" in capsys.readouterr().out


@pytest.mark.slow  # kills a training subprocess
def test_a_run_killed_midway_is_not_taken_for_done(tmp_path):
    """fingerprint.json is removed when a stage starts and written when it ends."""
    plan = [{"name": "sft", "overrides": TINY_SFT}]
    run_pipeline([f"paths.artifacts={tmp_path}"], plan=plan)
    (tmp_path / "sft" / FINGERPRINT).unlink()  # as a run killed after results.json, before its end
    assert "checkpoint" in run_pipeline([f"paths.artifacts={tmp_path}"], plan=plan)["sft"]


def test_a_checkpoint_is_resumed_only_under_the_recipe_it_was_made_with(compose_config, tmp_path):
    """A retrained input (here a data file) or new settings in the same output folder start over."""
    from lit_rlhf.stages.common import checkpoint_dir, resume_checkpoint_path

    data = tmp_path / "train.jsonl"
    data.write_text('{"prompt": "a", "response": "b"}\n')
    overrides = ["experiment=gym_sft", "data=jsonl_sft", f"data.train.path={data}", f"data.val.path={data}"]
    cfg = compose_config(*overrides)
    directory = checkpoint_dir(cfg)
    assert resume_checkpoint_path(cfg) is None and (directory / "made_from.json").is_file()
    (directory / "last.ckpt").write_bytes(b"a checkpoint")
    assert resume_checkpoint_path(cfg) == str(directory / "last.ckpt")
    assert resume_checkpoint_path(compose_config(*overrides, "trainer.log_every_n_steps=3")) is None
    assert not (directory / "last.ckpt").exists()  # removed, so it can never be picked up later
    (directory / "last.ckpt").write_bytes(b"a checkpoint")
    assert resume_checkpoint_path(cfg) is None  # made under log_every_n_steps=3: starting over again
    (directory / "last.ckpt").write_bytes(b"a checkpoint")
    assert resume_checkpoint_path(cfg) == str(directory / "last.ckpt")
    data.write_text('{"prompt": "a", "response": "c"}\n')
    assert resume_checkpoint_path(cfg) is None


def test_starting_over_empties_the_checkpoints_and_an_explicit_path_is_kept(compose_config, tmp_path):
    from lit_rlhf.stages.common import checkpoint_dir, resume_checkpoint_path

    cfg = compose_config("experiment=gym_sft")
    directory = checkpoint_dir(cfg)
    resume_checkpoint_path(cfg)
    (directory / "last.ckpt").write_bytes(b"an old run")
    assert resume_checkpoint_path(compose_config("experiment=gym_sft", "resume=false")) is None
    assert not (directory / "last.ckpt").exists()  # a kill before the first save cannot resume the old run
    (directory / "last.ckpt").write_bytes(b"a run to extend")
    longer = compose_config("experiment=gym_sft", "trainer.max_epochs=20", f"resume={directory / 'last.ckpt'}")
    assert resume_checkpoint_path(longer) == str(directory / "last.ckpt")


def test_a_cache_is_kept_only_for_what_it_was_made_from(tmp_path):
    """The reference-baseline cache of a reward model that was trained again is scored again, not reused."""
    from lit_rlhf.provenance import clear_if_made_otherwise

    cache = tmp_path / "reference_baseline.jsonl"
    assert clear_if_made_otherwise(cache, {"reward_model": "run:a"}) is False  # nothing cached yet
    cache.write_text('{"prompt": "p", "score": 0.7}\n')
    assert clear_if_made_otherwise(cache, {"reward_model": "run:a"}) is False and cache.exists()
    assert clear_if_made_otherwise(cache, {"reward_model": "run:b"}) is True and not cache.exists()
    cache.write_text('{"prompt": "p", "score": -0.1}\n')
    assert clear_if_made_otherwise(cache, {"reward_model": "run:b"}) is False and cache.exists()
    (tmp_path / "reference_baseline.jsonl.made_from.json").unlink()  # a cache of unknown origin
    assert clear_if_made_otherwise(cache, {"reward_model": "run:b"}) is True
