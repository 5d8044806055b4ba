"""``lit-rlhf-train``: compose the Hydra config and run the chosen stage."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from lit_rlhf.data.errors import DataError
from lit_rlhf.stages import get_stage

# Errors a user causes (bad data, a wrong path or value) end with one clear line, not a
# traceback from deep inside a library; HYDRA_FULL_ERROR=1 still shows everything.
USER_ERRORS = (DataError, FileNotFoundError, KeyError, ValueError)


def train(cfg: DictConfig) -> dict:
    """Run ``cfg.stage`` on a composed config; importable, so notebooks and tests call the same code."""
    return get_stage(cfg.stage)(cfg)


def run_command(cfg: DictConfig, prog: str) -> dict:
    """``train(cfg)``, with a user error ending the command in one line naming ``prog``."""
    import os

    try:
        return train(cfg)
    except Exception as err:
        cause = _user_error(err)
        if cause is None or os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        message = cause.args[0] if isinstance(cause, KeyError) and cause.args else cause
        raise SystemExit(f"{prog}: error: {message}\n(set HYDRA_FULL_ERROR=1 for the full traceback)") from None


@hydra.main(version_base="1.3", config_path="pkg://lit_rlhf.conf", config_name="train")
def main(cfg: DictConfig) -> None:
    run_command(cfg, "lit-rlhf-train")


def _user_error(err: BaseException | None) -> BaseException | None:
    """The user error behind ``err``, looking through Hydra's instantiation wrapper."""
    while err is not None:
        if isinstance(err, USER_ERRORS):
            return err
        err = err.__cause__
    return None


if __name__ == "__main__":
    main()
