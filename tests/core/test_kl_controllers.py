import pytest

from lit_rlhf.core.kl_controllers import AdaptiveKLController, FixedKLController, build_kl_controller


def test_fixed_controller_never_moves():
    ctl = FixedKLController(0.1)
    assert ctl.update(current_kl=100.0, n_steps=64) == 0.1


def test_adaptive_controller_by_hand():
    ctl = AdaptiveKLController(init_coef=0.2, target=6.0, horizon=100.0)
    # KL 9 vs target 6: error 0.5 clipped to 0.2; beta *= 1 + 0.2 * 10 / 100
    assert ctl.update(current_kl=9.0, n_steps=10) == pytest.approx(0.2 * 1.02)
    # KL 4.5 vs 6: error -0.25 clipped to -0.2
    assert ctl.update(current_kl=4.5, n_steps=10) == pytest.approx(0.2 * 1.02 * 0.98)
    # KL 6.6: error 0.1, inside the clip
    assert ctl.update(current_kl=6.6, n_steps=50) == pytest.approx(0.2 * 1.02 * 0.98 * 1.05)


def test_adaptive_state_round_trip_continues_exactly():
    a = AdaptiveKLController(0.05, target=1.0, horizon=10.0)
    for kl in (3.0, 0.2, 1.5):
        a.update(kl, 4)
    b = AdaptiveKLController(1.0, target=2.0, horizon=99.0)
    b.load_state_dict(a.state_dict())
    assert a.update(2.0, 3) == b.update(2.0, 3)
    assert a.state_dict() == b.state_dict()


def test_builder_and_validation():
    assert isinstance(build_kl_controller(0.1), FixedKLController)
    assert isinstance(build_kl_controller(0.1, adaptive=True, target=6.0), AdaptiveKLController)
    with pytest.raises(ValueError, match="target"):
        build_kl_controller(0.1, adaptive=True)
    with pytest.raises(ValueError):
        FixedKLController(-1.0)
