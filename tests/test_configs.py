from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException
from hydra.utils import instantiate

EXPERIMENTS = sorted(p.stem for p in (Path(__file__).parents[1] / "conf" / "experiment").glob("*.yaml"))


def test_there_are_experiments():
    assert "gym_sft" in EXPERIMENTS


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_composes(compose_config, experiment):
    cfg = compose_config(f"experiment={experiment}", "debug=fast")
    from lit_rlhf.stages import STAGES

    assert cfg.stage == experiment.removeprefix("gym_") and cfg.stage in STAGES
    assert cfg.trainer.max_epochs == 1  # the debug group shrinks it
    assert str(cfg.output_dir).endswith(cfg.stage)


def test_default_config_builds_its_objects(compose_config):
    cfg = compose_config("debug=fast")
    model, tokenizer = instantiate(cfg.model)
    datamodule = instantiate(cfg.data, tokenizer=tokenizer)
    module = instantiate(cfg.module, model=model, tokenizer=tokenizer)
    assert module.model is model and len(datamodule.train_rows) > 100
    assert cfg.module.optimizer._partial_ is True


def test_command_line_values_reach_the_objects(compose_config):
    cfg = compose_config("data.batch_size=7", "module.optimizer.lr=0.5", "model.tiny.num_layers=1")
    model, tokenizer = instantiate(cfg.model)
    assert model.config.num_hidden_layers == 1
    assert instantiate(cfg.data, tokenizer=tokenizer).batch_size == 7
    assert cfg.module.optimizer.lr == 0.5


def test_unknown_keys_and_groups_are_rejected_with_their_name(compose_config):
    with pytest.raises(ConfigCompositionException, match="no_such_key"):
        compose_config("trainer.no_such_key=1")
    with pytest.raises(ConfigCompositionException, match="no_such_experiment"):
        compose_config("experiment=no_such_experiment")


def test_unknown_stage_lists_the_known_ones():
    from lit_rlhf.stages import get_stage

    with pytest.raises(KeyError, match="known stages"):
        get_stage("rlhf_magic")


@pytest.mark.parametrize("experiment", EXPERIMENTS)
@pytest.mark.parametrize("callbacks", ["default", "gym", "none", "ppo"])
def test_debug_preset_builds_a_trainer_with_every_callbacks_group(compose_config, experiment, callbacks):
    """`debug=fast` sizes a callback and turns checkpointing off; neither may break a callbacks group."""
    from lit_rlhf.stages.common import build_trainer

    cfg = compose_config(f"experiment={experiment}", "debug=fast", f"callbacks={callbacks}", "logger=none")
    if callbacks == "gym" and not experiment.startswith("gym_"):  # the gym's monitor needs the gym
        with pytest.raises(Exception, match="gym"):
            build_trainer(cfg)
        return
    trainer = build_trainer(cfg)
    assert trainer.checkpoint_callback is None  # checkpointing is off in the preset
