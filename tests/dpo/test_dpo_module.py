"""DPOModule: a CPU smoke training, learning on fixed pairs, and the NTP counter through a checkpoint."""

import math

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from transformers import GPT2Config, GPT2LMHeadModel

from lit_rlhf.data.ntp import IndexedBatches
from lit_rlhf.dpo.config import DPOConfig
from lit_rlhf.dpo.data import DPODataModule
from lit_rlhf.dpo.module import DPOModule
from lit_rlhf.models.tokenizer import build_gym_tokenizer
from lit_rlhf.sft.data import SFTCollator, SFTDataset
from lit_rlhf.systems.checkpoint_io import AtomicCheckpointIO


def _trainer(**kwargs):
    defaults = {
        "max_epochs": 1,
        "accelerator": "cpu",
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
    }
    return L.Trainer(**{**defaults, **kwargs})


def _datamodule(tokenizer, rows, model, **kwargs):
    datamodule = DPODataModule(tokenizer, rows, batch_size=4, max_length=64, **kwargs)
    datamodule.cache_reference_logps(model)
    return datamodule


def _ntp(gym, tokenizer):
    return IndexedBatches(
        SFTDataset(gym.demonstrations("train", 1)[:20], tokenizer, 64),
        SFTCollator(tokenizer.pad_token_id),
        batch_size=4,
        seed=0,
    )


def test_smoke_training_moves_every_policy_parameter_and_logs_namespaced_metrics(policy, pair_rows, gym):
    model, tokenizer = policy
    datamodule = _datamodule(tokenizer, pair_rows[:12], model, val_fraction=0.25)
    module = DPOModule(
        model,
        tokenizer,
        DPOConfig(beta=0.1, ntp_coef=0.5),
        ntp_batches=_ntp(gym, tokenizer),
        optimizer=lambda params, **kw: torch.optim.AdamW(params, lr=1e-3, **kw),
    )
    before = {name: p.detach().clone() for name, p in module.named_parameters()}
    trainer = _trainer(limit_train_batches=2)
    trainer.fit(module, datamodule=datamodule)
    unchanged = [name for name, p in module.named_parameters() if torch.equal(p, before[name])]
    assert not unchanged
    assert module.ntp_step == 2
    for key in (
        "dpo/loss",
        "dpo/reward_accuracy",
        "dpo/reward_margin",
        "dpo/chosen_reward",
        "dpo/rejected_reward",
        "dpo/logps_chosen",
        "dpo/logps_rejected",
        "ntp/loss",
        "val/dpo/loss",
        "val/dpo/reward_accuracy",
    ):
        assert key in trainer.callback_metrics, key
    assert all(not name.startswith("reference") for name in module.state_dict())


@pytest.mark.parametrize("loss_type", ["sigmoid", "ipo"])
def test_training_on_fixed_pairs_lowers_the_loss_and_raises_the_margin(policy, pair_rows, loss_type):
    model, tokenizer = policy
    datamodule = _datamodule(tokenizer, pair_rows[:8], model)
    module = DPOModule(
        model,
        tokenizer,
        DPOConfig(beta=0.5, loss_type=loss_type),
        optimizer=lambda params, **kw: torch.optim.AdamW(params, lr=3e-3, **kw),
    )
    batch = datamodule.collate(datamodule.train_set.items)
    with torch.no_grad():
        start, start_stats = module.dpo_losses(batch)
    assert start.item() == pytest.approx(math.log(2) if loss_type == "sigmoid" else 1.0, abs=1e-4)
    _trainer(max_epochs=6).fit(module, datamodule=datamodule)
    with torch.no_grad():
        end, stats = module.dpo_losses(batch)
    assert end.item() < start.item()
    assert stats["dpo/reward_margin"] > 0 and stats["dpo/reward_accuracy"] > 0.5


def naive_response_logp(model, ids: list[int], prompt_len: int) -> float:
    """Summed log-prob of ``ids[prompt_len:]`` from one unpadded forward in eval mode."""
    model.eval()
    try:
        with torch.no_grad():
            logp = torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0].double(), dim=-1)
    finally:
        model.train()
    positions = torch.arange(prompt_len, len(ids))
    return float(logp[positions - 1, torch.tensor(ids)[positions]].sum())


def test_reference_logps_are_cached_without_dropout_and_the_mode_is_put_back(pair_rows):
    tokenizer = build_gym_tokenizer()
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_embd=32,
        n_layer=2,
        n_head=2,
        n_positions=128,
        resid_pdrop=0.1,
        embd_pdrop=0.1,
        attn_pdrop=0.1,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(0)
    reference = GPT2LMHeadModel(config)
    assert reference.training
    datamodule = DPODataModule(tokenizer, pair_rows[:6], batch_size=4, max_length=64)
    assert datamodule.cache_reference_logps(reference) == 6
    assert reference.training
    for item in datamodule.train_set.items:
        for side in ("chosen", "rejected"):
            expected = naive_response_logp(reference, item[f"{side}_ids"], item[f"{side}_prompt_len"])
            assert item[f"ref_{side}"] == pytest.approx(expected, abs=1e-4)


def test_batches_without_cached_reference_are_refused(policy, pair_rows):
    model, tokenizer = policy
    datamodule = DPODataModule(tokenizer, pair_rows[:4], batch_size=4)
    datamodule.setup()
    with pytest.raises(KeyError, match="cache the reference"):
        DPOModule(model, tokenizer).dpo_losses(datamodule.collate(datamodule.train_set.items))
    with pytest.raises(ValueError, match="ntp_batches"):
        DPOModule(model, tokenizer, DPOConfig(ntp_coef=0.1))
    with pytest.raises(ValueError, match="beta"):
        DPOConfig(beta=0)


def test_ntp_counter_round_trips_through_a_checkpoint(policy, pair_rows, gym, tmp_path):
    model, tokenizer = policy
    ntp = _ntp(gym, tokenizer)
    datamodule = _datamodule(tokenizer, pair_rows[:8], model)
    module = DPOModule(model, tokenizer, DPOConfig(ntp_coef=0.1), ntp_batches=ntp)
    trainer = _trainer(
        limit_train_batches=2,
        plugins=[AtomicCheckpointIO()],
        callbacks=[ModelCheckpoint(dirpath=tmp_path, save_last=True)],
        enable_checkpointing=True,
    )
    trainer.fit(module, datamodule=datamodule)
    assert module.ntp_step == 2
    assert torch.load(tmp_path / "last.ckpt", weights_only=True)["dpo_state"] == {"ntp_step": 2}

    drawn = []
    resumed = DPOModule(
        type(model)(model.config), tokenizer, DPOConfig(ntp_coef=0.1), ntp_batches=lambda k: drawn.append(k) or ntp(k)
    )
    trainer = _trainer(max_epochs=2, limit_train_batches=2)
    trainer.fit(resumed, datamodule=datamodule, ckpt_path=str(tmp_path / "last.ckpt"))
    assert drawn == [2, 3] and resumed.ntp_step == 4
