"""ResumableDataLoader: uninterrupted, it draws exactly what a plain DataLoader draws (same batches, same global
RNG and generator states after); restored mid-epoch, it serves the rest of the epoch and then the epochs the
uninterrupted loader would have served."""

import pytest
import torch
from torch.utils.data import DataLoader, IterableDataset

from lit_rlhf.data.resumable import ResumableDataLoader
from lit_rlhf.reward.data import LengthGroupedBatchSampler

DATA = list(range(23))


def _loader(cls, kind: str, **extra):
    """A loader of ``DATA`` of one ``kind``: shuffled from the global RNG, from its own generator, by a batch
    sampler of its own, or unshuffled and unbatched."""
    if kind == "global":
        return cls(DATA, batch_size=4, shuffle=True, drop_last=True, **extra)
    if kind == "generator":
        return cls(DATA, batch_size=4, shuffle=True, generator=torch.Generator().manual_seed(7), **extra)
    if kind == "length_grouped":
        return cls(
            DATA, batch_sampler=LengthGroupedBatchSampler([i % 5 for i in DATA], 4, seed=3, mega_factor=2), **extra
        )
    return cls(DATA, batch_size=None, **extra)


def _epochs(loader, epochs: int, skip_first: int = 0) -> list:
    """The batches of ``epochs`` epochs, drawing from the global RNG between ``iter()`` and the first batch and
    after every batch, as training steps do; the first ``skip_first`` epochs' batches are not kept."""
    served = []
    for epoch in range(epochs):
        iterator = iter(loader)
        torch.rand(3)
        for batch in iterator:
            if epoch >= skip_first:
                served.append(_plain(batch))
            torch.rand(2)
    return served


KINDS = ["global", "generator", "length_grouped", "unbatched"]


@pytest.mark.parametrize("kind", KINDS)
def test_a_resumable_loader_draws_what_a_plain_one_draws(kind):
    results = []
    for cls in (DataLoader, ResumableDataLoader):
        torch.manual_seed(0)
        loader = _loader(cls, kind)
        batches = _epochs(loader, epochs=2)
        generator = loader.generator.get_state() if loader.generator is not None else None
        results.append((batches, torch.get_rng_state(), generator))
    (plain, plain_rng, plain_generator), (resumable, resumable_rng, resumable_generator) = results
    assert plain == resumable and len(plain) > 8
    assert torch.equal(plain_rng, resumable_rng)
    assert (plain_generator is None) == (resumable_generator is None)
    if plain_generator is not None:
        assert torch.equal(plain_generator, resumable_generator)


@pytest.mark.parametrize("persistent", [False, True])
def test_worker_processes_see_the_same_batches_and_leave_the_same_global_rng(persistent):
    results = []
    for cls in (DataLoader, ResumableDataLoader):
        torch.manual_seed(0)
        loader = _loader(cls, "global", num_workers=1, persistent_workers=persistent)
        results.append((_epochs(loader, epochs=2), torch.get_rng_state()))
    assert results[0][0] == results[1][0] and torch.equal(results[0][1], results[1][1])
    state = loader.state_dict()  # the second epoch's order, all of it served
    assert state["served"] == 5 and state["indices"].view(5, 4).tolist() == results[1][0][5:]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("stop_after", [0, 2, 3])  # inside the first epoch (5 or more batches)
def test_a_restored_loader_finishes_the_epoch_then_draws_the_next_ones_alike(kind, stop_after):
    torch.manual_seed(0)
    loader = _loader(ResumableDataLoader, kind)
    full = _epochs(loader, epochs=3)

    torch.manual_seed(0)
    loader = _loader(ResumableDataLoader, kind)
    iterator = iter(loader)
    torch.rand(3)
    first = []
    for batch in iterator:
        first.append(_plain(batch))
        torch.rand(2)
        if len(first) == stop_after + 1:
            break
    # a checkpoint: the loader's state (through a weights-only save) and the global RNG
    state = _weights_only_roundtrip(loader.state_dict())
    rng = torch.get_rng_state()

    torch.manual_seed(123)  # the restarted process draws other numbers before it restores
    restored = _loader(ResumableDataLoader, kind)
    restored.load_state_dict(state)
    torch.set_rng_state(rng)
    rest = [_plain(batch) for batch in restored]  # the rest of the epoch: no global RNG draw between batches here
    assert first + rest == full[: len(first) + len(rest)]
    for batch in rest:  # what the uninterrupted run drew after those batches
        torch.rand(2)
    assert _epochs(restored, epochs=2) == full[len(first) + len(rest) :]


def test_after_an_epoch_end_checkpoint_the_generator_state_gives_the_next_epoch():
    torch.manual_seed(0)
    loader = _loader(ResumableDataLoader, "generator")
    first_epoch = _epochs(loader, epochs=1)
    state = loader.state_dict()
    second_epoch = _epochs(loader, epochs=1)

    restored = _loader(ResumableDataLoader, "generator")
    restored.load_shuffle_state(state)
    assert _epochs(restored, epochs=1) == second_epoch != first_epoch


def test_a_state_for_other_data_or_an_iterable_dataset_is_refused():
    loader = _loader(ResumableDataLoader, "global")
    next(iter(loader))
    state = loader.state_dict()
    with pytest.raises(ValueError, match="23 examples, but this loader has 10"):
        ResumableDataLoader(DATA[:10], batch_size=4, shuffle=True).load_state_dict(state)

    class Stream(IterableDataset):
        def __iter__(self):
            return iter(DATA)

    with pytest.raises(TypeError, match="map-style dataset"):
        ResumableDataLoader(Stream(), batch_size=4)


def _plain(batch):
    return batch.tolist() if torch.is_tensor(batch) else batch


def _weights_only_roundtrip(state: dict) -> dict:
    import io

    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)
