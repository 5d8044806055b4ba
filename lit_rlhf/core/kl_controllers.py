"""The coefficient β of the KL penalty: fixed, or adapted toward a target KL (Ziegler et al., 2019).

Both controllers expose ``value``, ``update(current_kl, n_steps)`` and ``state_dict`` /
``load_state_dict`` holding plain floats, so a resumed run continues with exactly the same β.
"""

from __future__ import annotations


class FixedKLController:
    """β stays at ``coef``; ``update`` is a no-op so callers need not know which controller they hold."""

    def __init__(self, coef: float):
        if coef < 0:
            raise ValueError(f"KL coefficient must be >= 0, got {coef}")
        self.value = float(coef)

    def update(self, current_kl: float, n_steps: int) -> float:
        return self.value

    def state_dict(self) -> dict:
        return {"value": self.value}

    def load_state_dict(self, state: dict) -> None:
        self.value = float(state["value"])


class AdaptiveKLController:
    """Proportional control of β: ``e = clip(KL / target - 1, -0.2, 0.2)``, ``β <- β (1 + e n / horizon)``.

    ``current_kl`` is the mean per-sequence KL of the last batch (the quantity the target is
    stated in) and ``n_steps`` the number of samples (episodes) it covers, as in Ziegler et
    al.; β grows when the policy drifts further than ``target`` and shrinks when it stays closer.
    """

    def __init__(self, init_coef: float, target: float, horizon: float, max_error: float = 0.2):
        if init_coef <= 0 or target <= 0 or horizon <= 0:
            raise ValueError(f"init_coef, target and horizon must be > 0; got {init_coef}, {target}, {horizon}")
        self.value = float(init_coef)
        self.target = float(target)
        self.horizon = float(horizon)
        self.max_error = float(max_error)

    def update(self, current_kl: float, n_steps: int) -> float:
        error = min(max(float(current_kl) / self.target - 1.0, -self.max_error), self.max_error)
        self.value *= 1.0 + error * n_steps / self.horizon
        return self.value

    def state_dict(self) -> dict:
        return {"value": self.value, "target": self.target, "horizon": self.horizon, "max_error": self.max_error}

    def load_state_dict(self, state: dict) -> None:
        for key in ("value", "target", "horizon", "max_error"):
            setattr(self, key, float(state[key]))


def build_kl_controller(
    coef: float, adaptive: bool = False, target: float | None = None, horizon: float = 10000.0
) -> FixedKLController | AdaptiveKLController:
    """A fixed controller, or an adaptive one when ``adaptive`` (then ``target`` is required)."""
    if not adaptive:
        return FixedKLController(coef)
    if target is None:
        raise ValueError("an adaptive KL controller needs a target KL")
    return AdaptiveKLController(coef, target, horizon)
