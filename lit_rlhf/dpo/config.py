"""Every DPO knob in one dataclass, checked when built."""

from __future__ import annotations

from dataclasses import dataclass

from lit_rlhf.core.dpo_loss import LOSS_TYPES
from lit_rlhf.data.errors import ConfigError


@dataclass
class DPOConfig:
    """Hyper-parameters of ``L = L_DPO + ntp_coef · L_NTP`` (optimizer settings live in the module's partial)."""

    beta: float = 0.1
    """β: strength of the implicit KL tie to the reference; smaller lets the policy move further."""
    loss_type: str = "sigmoid"
    """sigmoid (the DPO loss) | ipo (squared distance of the log-ratio margin to 1/(2β))."""
    label_smoothing: float = 0.0
    """ε of conservative DPO: the share of labels assumed flipped (sigmoid loss only)."""
    average_logprobs: bool = False
    """Use the mean instead of the sum of response-token log-probs (length-normalised; common with IPO)."""
    ntp_coef: float = 0.0
    """λ of the next-token-prediction loss on SFT batches, against capability forgetting (as in PPO); 0 turns it off."""

    def __post_init__(self):
        checks = {
            "beta": self.beta > 0,
            "loss_type": self.loss_type in LOSS_TYPES,
            "label_smoothing": 0 <= self.label_smoothing < 0.5
            and (self.loss_type == "sigmoid" or self.label_smoothing == 0),
            "ntp_coef": self.ntp_coef >= 0,
        }
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise ConfigError("invalid DPO config values: " + ", ".join(f"{k}={getattr(self, k)!r}" for k in bad))
