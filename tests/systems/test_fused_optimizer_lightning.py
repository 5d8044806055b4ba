"""FusedBackwardAdamW inside Lightning's automatic optimization: step(closure) runs the backward."""

import lightning as L
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lit_rlhf.systems.adamw import build_adamw
from lit_rlhf.systems.fused_optimizer import FusedBackwardAdamW


class _Regressor(L.LightningModule):
    def __init__(self, fused_backward: bool):
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Linear(4, 8), nn.LayerNorm(8), nn.Linear(8, 1))
        self.fused_backward = fused_backward

    def training_step(self, batch, batch_idx):
        x, y = batch
        return (self.net(x) - y).square().mean()

    def configure_optimizers(self):
        make = FusedBackwardAdamW if self.fused_backward else build_adamw
        opt = make(self.net.named_parameters(), lr=0.05, weight_decay=0.1)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0 / (1 + s))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def _fit(fused_backward: bool) -> _Regressor:
    g = torch.Generator().manual_seed(1)
    data = TensorDataset(torch.randn(12, 4, generator=g), torch.randn(12, 1, generator=g))
    module = _Regressor(fused_backward)
    trainer = L.Trainer(
        max_steps=5,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(module, DataLoader(data, batch_size=3))
    return module


def test_lightning_automatic_optimization_matches_standard():
    standard, fused = _fit(False), _fit(True)
    for p, q in zip(standard.parameters(), fused.parameters()):
        torch.testing.assert_close(p, q)
    assert all(p.grad is None for p in fused.parameters())
