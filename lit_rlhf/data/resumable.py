"""A train DataLoader that a killed run restarts on the batch where it stopped, in the same order.

Lightning saves a train loader's ``state_dict()`` in every checkpoint and, when a run restarts in the middle
of an epoch, calls ``load_state_dict()`` before it iterates the loader again; a loader without those methods
starts the epoch over in a new order (Lightning warns). :class:`ResumableDataLoader` has them:

- ``state_dict()``: the current epoch's batches of dataset indices, in the order they are served, how many
  were served, and the state of what the next epoch's order is drawn from: the loader's ``generator`` (if it has
  one) and the sampler's or batch sampler's own ``state_dict()`` (if it has one, e.g. an epoch counter);
- after ``load_state_dict()``, the next ``iter()`` serves the rest of that epoch and draws from no random
  generator (a restored run's generators are already past that epoch's draws); the epoch after it draws
  as usual.

Uninterrupted, it draws from the global torch RNG and from ``generator`` exactly what a plain DataLoader with
the same arguments draws, at the same moments: the worker seed when ``iter()`` is called, the sampler's order
at the epoch's first batch. The one difference: the index sampler is read to its end at that first batch
(the stock samplers draw their whole order there anyway), so that the whole epoch's order can be saved.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader, IterableDataset


@dataclass
class _Epoch:
    """One epoch of a :class:`ResumableDataLoader`: its index batches (each a list of dataset indices, or one
    index when the loader does not batch) and how many of them were served."""

    batches: list
    served: int = 0


class ResumableDataLoader(DataLoader):
    """A :class:`torch.utils.data.DataLoader` (same arguments) whose position within an epoch is saved and
    restored; see the module docstring. Map-style datasets only: an iterable dataset has no index order."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if isinstance(self.dataset, IterableDataset):
            raise TypeError(
                "ResumableDataLoader needs a map-style dataset (with __getitem__ and __len__), "
                f"got the iterable {type(self.dataset).__name__}"
            )
        self._epoch = _Epoch([])
        self._restored: _Epoch | None = None  # set by load_state_dict, finished by the next iter()
        self._replay: list | None = None  # the rest of a restored epoch, for the index sampler to hand out

    @property
    def _index_sampler(self):
        # DataLoader's iterators take their indices from this property (torch.utils.data.dataloader), so
        # wrapping it records the epoch's order without changing what, or when, the sampler draws.
        return _RecordedOrder(self, super()._index_sampler)

    def __iter__(self) -> Iterator:
        restored, self._restored = self._restored, None
        if restored is None:
            self._epoch, self._replay = _Epoch([]), None  # the batches are recorded at the epoch's first batch
            return self._count_served(super().__iter__(), self._epoch)
        self._epoch, self._replay = restored, restored.batches[restored.served :]
        # Creating an iterator draws its workers' base seed; the restored run drew it before the checkpoint.
        with torch.random.fork_rng(devices=[]):
            generator_state = self.generator.get_state() if self.generator is not None else None
            iterator = super().__iter__()
            if generator_state is not None:
                self.generator.set_state(generator_state)
        return self._count_served(iterator, restored)

    @staticmethod
    def _count_served(iterator: Iterator, epoch: _Epoch) -> Iterator:
        for batch in iterator:
            epoch.served += 1
            yield batch

    def state_dict(self) -> dict:
        """The current epoch's order (``indices`` flat, ``sizes`` per batch or None when unbatched), ``served``,
        the dataset's length, the ``generator``'s state (None without one) and the samplers' states. Tensors and
        plain values only (samplers' states permitting), so a checkpoint holding it loads with ``weights_only``."""
        indices, sizes = _pack(self._epoch.batches)
        return {
            "indices": indices,
            "sizes": sizes,
            "served": self._epoch.served,
            "dataset_length": len(self.dataset),
            "generator": self.generator.get_state() if self.generator is not None else None,
            "samplers": [sampler.state_dict() for sampler in self._stateful_samplers()],
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore the generator and, when the saved epoch was not served to its end, make the next ``iter()``
        serve the rest of it (Lightning calls this when it restarts a run in the middle of an epoch)."""
        self.load_shuffle_state(state)
        epoch = _Epoch(_unpack(state["indices"], state["sizes"]), int(state["served"]))
        if not 0 <= epoch.served <= len(epoch.batches):
            raise ValueError(
                f"the checkpoint's train loader state says {epoch.served} of {len(epoch.batches)} batches were served"
            )
        self._restored = epoch if epoch.served < len(epoch.batches) else None
        self._epoch = epoch

    def load_shuffle_state(self, state: dict) -> None:
        """Restore only what the next epoch's order is drawn from (generator, samplers' states): after a checkpoint
        at an epoch's end, the next epoch then draws the order the uninterrupted run drew."""
        if int(state["dataset_length"]) != len(self.dataset):
            raise ValueError(
                f"the checkpoint's train loader state is for {state['dataset_length']} examples, but "
                f"this loader has {len(self.dataset)}: the resumed run must read the same data"
            )
        if state["generator"] is not None:
            if self.generator is None:
                raise ValueError("the checkpoint's train loader shuffled with its own generator; this one has none")
            self.generator.set_state(state["generator"])
        samplers = self._stateful_samplers()
        if len(samplers) != len(state["samplers"]):
            raise ValueError(
                f"the checkpoint's train loader state has {len(state['samplers'])} sampler states, but "
                f"this loader has {len(samplers)} samplers with state"
            )
        for sampler, sampler_state in zip(samplers, state["samplers"]):
            sampler.load_state_dict(sampler_state)

    def _stateful_samplers(self) -> list:
        """The sampler and batch sampler that have ``state_dict`` and ``load_state_dict``, each once."""
        samplers = {id(s): s for s in (self.sampler, self.batch_sampler) if s is not None}
        return [
            s
            for s in samplers.values()
            if callable(getattr(s, "state_dict", None)) and callable(getattr(s, "load_state_dict", None))
        ]


class ResumableTrainLoader:
    """LightningDataModule mixin: the train loader's state in the DataModule's own ``state_dict``, put back into the
    loader when ``train_dataloader`` builds it (wrap the loader it returns in :meth:`resumable`).

    Lightning restores a stateful train loader itself only when it restarts mid-epoch and builds the loader after
    restoring its loops. A ``configure_optimizers`` that asks for ``trainer.estimated_stepping_batches`` (a
    scheduler's length) makes it build the loader before, and the loader is then never restored; and after a
    checkpoint at an epoch's end it restores nothing, so the loader's generator and samplers would start over.
    A DataModule's state comes back before the loader is built in either case.
    """

    _train_loader: ResumableDataLoader | None = None
    _restored_loader_state: dict | None = None

    def resumable(self, loader: ResumableDataLoader) -> ResumableDataLoader:
        """``loader``, set to the restored position: the rest of the interrupted epoch when the checkpoint was
        written mid-epoch, else only what the next epoch's order is drawn from."""
        state, self._restored_loader_state = self._restored_loader_state, None
        if state is not None:
            if state["mid_epoch"]:
                loader.load_state_dict(state["train_loader"])
            else:
                loader.load_shuffle_state(state["train_loader"])
        self._train_loader = loader
        return loader

    def state_dict(self) -> dict:
        if self._train_loader is None:
            return {}
        trainer = getattr(self, "trainer", None)
        return {
            "train_loader": self._train_loader.state_dict(),
            "mid_epoch": trainer is None or epoch_in_progress(trainer),
        }

    def load_state_dict(self, state_dict: dict) -> None:
        self._restored_loader_state = state_dict or None


def epoch_in_progress(trainer) -> bool:
    """Whether the Trainer is inside an epoch (a checkpoint now resumes mid-epoch), by Lightning's own test."""
    progress = trainer.fit_loop.epoch_progress.current
    return progress.ready != progress.processed or progress.started != progress.processed


class _RecordedOrder:
    """A loader's index sampler that records the order it hands out in the loader's current epoch, or hands out
    the rest of a restored epoch (``loader._replay``) instead of drawing a new one. An iterator with persistent
    workers keeps one of these across epochs, so the epoch is looked up when an iteration starts."""

    def __init__(self, loader: ResumableDataLoader, sampler):
        self.loader, self.sampler = loader, sampler

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self) -> Iterator:
        # A generator, like BatchSampler.__iter__: nothing is drawn before the first batch is asked for.
        loader = self.loader
        if loader._replay is not None:
            replay, loader._replay = loader._replay, None
            yield from replay
            return
        epoch = loader._epoch
        epoch.batches = list(self.sampler)
        yield from epoch.batches


def _pack(batches: list) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(indices [N], sizes [B])`` of a list of index batches, or ``(indices, None)`` of a list of indices."""
    if not batches or not hasattr(batches[0], "__len__"):
        return torch.tensor([int(b) for b in batches], dtype=torch.long), None
    sizes = [len(b) for b in batches]
    return torch.tensor([int(i) for b in batches for i in b], dtype=torch.long), torch.tensor(sizes, dtype=torch.long)


def _unpack(indices: torch.Tensor, sizes: torch.Tensor | None) -> list:
    flat = indices.tolist()
    if sizes is None:
        return flat
    batches, start = [], 0
    for size in sizes.tolist():
        batches.append(flat[start : start + size])
        start += size
    return batches
