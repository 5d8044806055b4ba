"""BatchCost: each training batch's wall time, CPU time and peak memory reach the user's logger."""

import csv
import resource
import time

import lightning as L
import torch
from lightning.pytorch.loggers import CSVLogger
from torch.utils.data import DataLoader

from lit_rlhf.callbacks import BatchCost, peak_memory_mb


class Sleepy(L.LightningModule):
    """A batch that sleeps 50 ms (wall time without CPU time) and then spins about 50 ms of CPU time."""

    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)

    def training_step(self, batch, batch_idx):
        time.sleep(0.05)
        start = time.process_time()
        while time.process_time() - start < 0.05:
            pass
        return self.layer(batch).pow(2).mean()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_each_batch_logs_its_wall_and_cpu_seconds_and_the_peak(tmp_path):
    trainer = L.Trainer(
        max_epochs=1,
        callbacks=[BatchCost()],
        logger=CSVLogger(tmp_path, name="", version=0),
        log_every_n_steps=1,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
    )
    trainer.fit(Sleepy(), DataLoader(torch.randn(3, 2), batch_size=1))
    with (tmp_path / "version_0" / "metrics.csv").open() as handle:
        rows = [r for r in csv.DictReader(handle) if r["perf/batch_seconds"]]
    assert len(rows) == 3
    for row in rows:
        wall, cpu = float(row["perf/batch_seconds"]), float(row["perf/batch_cpu_seconds"])
        assert 0.1 <= wall < 5.0
        assert 0.05 <= cpu < wall - 0.03  # the sleep counts in wall time only
        assert 10 < float(row["perf/peak_memory_mb"]) <= peak_memory_mb(torch.device("cpu"))


def test_the_cpu_peak_is_the_processes_resident_peak_in_mib():
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert abs(peak_memory_mb(torch.device("cpu")) - kib / 1024) < 64  # allocations between the two reads
