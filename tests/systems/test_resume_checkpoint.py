"""ResumeCheckpoint (when it writes, what it keeps, what it refuses), the shipped configs' checkpoint entries, and
``resume_checkpoint_path``, the one place every stage asks where to resume from."""

import lightning as L
import pytest
import torch
from hydra.utils import instantiate

from lit_rlhf.data.errors import ConfigError
from lit_rlhf.data.resumable import ResumableDataLoader
from lit_rlhf.stages.common import resume_checkpoint_path
from lit_rlhf.systems.checkpoint_io import AtomicCheckpointIO
from lit_rlhf.systems.resume import ResumeCheckpoint

TRAINING_EXPERIMENTS = ["gym_sft", "gym_reward_model", "gym_ppo", "gym_dpo"]


class Regression(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)

    def training_step(self, batch, batch_idx):
        loss = self.layer(batch).pow(2).mean()
        self.log("loss", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _fit(directory, batches: int = 6, epochs: int = 1, accumulate: int = 1, **checkpoint):
    callback = ResumeCheckpoint(directory, **checkpoint)
    torch.manual_seed(0)
    loader = ResumableDataLoader(torch.randn(batches, 2), batch_size=1, shuffle=True)
    trainer = L.Trainer(
        max_epochs=epochs,
        accumulate_grad_batches=accumulate,
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        plugins=[AtomicCheckpointIO()],
        callbacks=[callback],
    )
    trainer.fit(Regression(), loader)
    return callback


def test_every_n_steps_keeps_the_newest_checkpoints_and_last_is_the_newest(tmp_path):
    _fit(tmp_path, batches=6, epochs=2, every_n_train_steps=2, every_n_epochs=1, keep=3)
    # written after steps 2 and 4 of each epoch and at each epoch's end (6, 12); step 6's and 12's falls there
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch1-step10.ckpt", "epoch1-step8.ckpt", "last.ckpt"]
    last = torch.load(tmp_path / "last.ckpt", map_location="cpu", weights_only=True)  # plain values and tensors
    assert last["global_step"] == 12 and last["callbacks"]["ResumeCheckpoint"]["name"] == "epoch1-step12.ckpt"
    assert torch.load(tmp_path / "epoch1-step10.ckpt", weights_only=True)["global_step"] == 10


def test_checkpoints_fall_between_optimizer_steps_never_inside_accumulation(tmp_path):
    _fit(tmp_path, batches=8, accumulate=2, every_n_train_steps=1, every_n_epochs=0, keep=10)
    # 4 optimizer steps: after steps 1, 2 and 3; the fourth, due on the epoch's last batch, is written at its end
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "epoch0-step1.ckpt",
        "epoch0-step2.ckpt",
        "epoch0-step3.ckpt",
        "last.ckpt",
    ]
    assert torch.load(tmp_path / "last.ckpt", weights_only=True)["global_step"] == 4


def test_a_minute_interval_and_the_end_of_training_write_checkpoints(tmp_path):
    _fit(tmp_path / "minutes", every_n_epochs=0, every_n_minutes=1e-9, keep=10)
    assert len(list((tmp_path / "minutes").glob("epoch*.ckpt"))) == 5  # every step but the last, then last.ckpt
    _fit(tmp_path / "end", every_n_epochs=0)  # no interval at all: training's end still writes one
    assert torch.load(tmp_path / "end" / "last.ckpt", weights_only=True)["global_step"] == 6


@pytest.mark.parametrize(
    "setting",
    [
        {"every_n_train_steps": -1},
        {"every_n_epochs": 1.5},
        {"keep": 0},
        {"every_n_minutes": 0},
        {"every_n_minutes": "10"},
    ],
)
def test_bad_settings_name_their_key(tmp_path, setting):
    with pytest.raises(ConfigError, match=f"callbacks.checkpoint.{next(iter(setting))}"):
        ResumeCheckpoint(tmp_path, **setting)


@pytest.mark.parametrize("experiment", TRAINING_EXPERIMENTS)
def test_every_training_experiment_writes_last_ckpt_under_its_output_dir(compose_config, experiment, tmp_path):
    cfg = compose_config(f"experiment={experiment}")
    assert cfg.trainer.get("enable_checkpointing", True) and cfg.resume is True
    callback = instantiate(cfg.callbacks.checkpoint)
    assert isinstance(callback, ResumeCheckpoint)
    assert callback.last_path == tmp_path / cfg.stage / "checkpoints" / "last.ckpt"
    assert callback.every_n_train_steps or callback.every_n_epochs


def test_resume_continues_from_last_ckpt_when_there_is_one(compose_config, tmp_path):
    cfg = compose_config("experiment=gym_ppo")
    assert resume_checkpoint_path(cfg) is None  # nothing written yet: start from scratch
    last = tmp_path / "ppo" / "checkpoints" / "last.ckpt"
    last.parent.mkdir(parents=True, exist_ok=True)  # the first call recorded the recipe there (made_from.json)
    last.write_bytes(b"")
    assert resume_checkpoint_path(cfg) == str(last)
    assert resume_checkpoint_path(compose_config("experiment=gym_ppo", "resume=false")) is None
    # a run that writes no checkpoints does not pick up another run's
    assert resume_checkpoint_path(compose_config("experiment=gym_ppo", "trainer.enable_checkpointing=false")) is None
    other = tmp_path / "other.ckpt"
    other.write_bytes(b"")
    assert resume_checkpoint_path(compose_config("experiment=gym_dpo", f"resume={other}")) == str(other)
    with pytest.raises(ConfigError, match="no such file"):
        resume_checkpoint_path(compose_config("experiment=gym_dpo", f"resume={tmp_path}/missing.ckpt"))
