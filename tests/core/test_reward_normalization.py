import pytest
import torch

from lit_rlhf.core.reward_normalization import (
    BatchWhitenNormalizer,
    IdentityNormalizer,
    RunningMeanStdNormalizer,
    build_reward_normalizer,
)


def test_identity_passes_through():
    x = torch.tensor([1.0, -2.0])
    assert torch.equal(IdentityNormalizer()(x), x)


def test_batch_whitening_by_hand():
    out = BatchWhitenNormalizer(eps=0.0)(torch.tensor([1.0, 3.0]))
    # mean 2, unbiased std sqrt(2)
    torch.testing.assert_close(out, torch.tensor([-(2**-0.5), 2**-0.5]))


def test_running_stats_match_all_data_seen():
    g = torch.Generator().manual_seed(0)
    batches = [torch.randn(n, generator=g, dtype=torch.float64) * 3 + 100 for n in (1, 5, 2, 8)]
    norm = RunningMeanStdNormalizer(eps=0.0)
    for i, batch in enumerate(batches):
        out = norm(batch)
        seen = torch.cat(batches[: i + 1])
        assert norm.mean == pytest.approx(seen.mean().item(), rel=1e-12)
        if seen.numel() > 1:
            assert norm.std == pytest.approx(seen.std().item(), rel=1e-9)
            torch.testing.assert_close(out, (batch - seen.mean()) / seen.std())


def test_running_state_round_trip_is_exact():
    a = RunningMeanStdNormalizer()
    a(torch.tensor([1.0, 2.0, 4.0]))
    b = RunningMeanStdNormalizer()
    b.load_state_dict(a.state_dict())
    x = torch.tensor([0.5, 7.0])
    assert torch.equal(a(x), b(x))
    assert a.state_dict() == b.state_dict()


def test_all_reduce_hook_gives_global_statistics():
    # Two simulated ranks: the hook returns the sum of both ranks' moment vectors.
    rank_batches = [torch.tensor([1.0, 2.0]), torch.tensor([10.0, 20.0, 30.0])]
    normalizers = []
    for rank in range(2):
        other = rank_batches[1 - rank]

        def all_reduce_sum(moments, other=other):
            # The peer's moments, taken around its running mean, which is 0 on both fresh ranks.
            peer = other.double()
            return moments + torch.stack(
                [torch.tensor(float(peer.numel()), dtype=torch.float64), peer.sum(), peer.square().sum()]
            )

        norm = RunningMeanStdNormalizer(all_reduce_sum=all_reduce_sum)
        norm.update(rank_batches[rank])
        normalizers.append(norm)
    everything = torch.cat(rank_batches).double()
    for norm in normalizers:
        assert norm.count == 5
        assert norm.mean == pytest.approx(everything.mean().item())
        assert norm.std == pytest.approx(everything.std().item())


def test_builder():
    assert isinstance(build_reward_normalizer("none"), IdentityNormalizer)
    assert isinstance(build_reward_normalizer("batch"), BatchWhitenNormalizer)
    assert isinstance(build_reward_normalizer("running"), RunningMeanStdNormalizer)
    with pytest.raises(ValueError, match="unknown reward normalisation"):
        build_reward_normalizer("zscore")
