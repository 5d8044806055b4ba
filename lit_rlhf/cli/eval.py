"""``lit-rlhf-eval``: candidate checkpoints vs a baseline, judged by the gold judge, a reward model or people.

The same as ``lit-rlhf-train experiment=gym_eval``; every value of ``conf/experiment/gym_eval.yaml``
is a Hydra override (``eval.judge=reward_model``; replace the candidates with
``'~eval.candidates' '+eval.candidates={mine: /path}'``, add one with ``++eval.candidates.mine=/path``).
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from lit_rlhf.cli.train import run_command


@hydra.main(version_base="1.3", config_path="pkg://lit_rlhf.conf", config_name="eval")
def main(cfg: DictConfig) -> None:
    run_command(cfg, "lit-rlhf-eval")


if __name__ == "__main__":
    main()
