"""``lit-rlhf-train``: compose the Hydra config and run the chosen stage."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig
from omegaconf.errors import MissingMandatoryValue

import lit_rlhf.conf  # noqa: F401  registers the structured configs before Hydra composes
from lit_rlhf.data.errors import UserError
from lit_rlhf.run import train

# Errors a user causes end with one clear line, not a traceback from deep inside a library:
# bad data or config values (``UserError``: ``DataError``, ``ConfigError``), a missing file, a
# ``???`` left unset. Any other exception, a plain KeyError or ValueError included, is a bug and
# keeps its traceback. HYDRA_FULL_ERROR=1 shows the traceback of user errors too.
USER_ERRORS = (UserError, FileNotFoundError, MissingMandatoryValue)


def run_command(cfg: DictConfig, prog: str) -> dict:
    """``train(cfg)``, with a user error ending the command in one line naming ``prog``."""
    import os

    try:
        return train(cfg)
    except Exception as err:
        cause = user_error(err)
        if cause is None or os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        raise SystemExit(f"{prog}: error: {cause}\n(set HYDRA_FULL_ERROR=1 for the full traceback)") from None


@hydra.main(version_base="1.3", config_path="pkg://lit_rlhf.conf", config_name="train")
def main(cfg: DictConfig) -> None:
    run_command(cfg, "lit-rlhf-train")


def user_error(err: BaseException | None) -> BaseException | None:
    """The user error behind ``err``, looking through Hydra's instantiation wrapper."""
    while err is not None:
        if isinstance(err, USER_ERRORS):
            return err
        err = err.__cause__
    return None


if __name__ == "__main__":
    main()
