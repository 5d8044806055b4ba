"""The packaged Hydra configs (``pkg://lit_rlhf.conf``).

Importing this package registers the algorithm config dataclasses as Hydra structured configs, so that each
algorithm's defaults have one home (the dataclass, with a docstring per field) and every field can be
overridden from the command line, e.g. ``module.config.kl_coef=0.05``. Hydra imports this package before it
reads any config from it.
"""

from pathlib import Path

from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

from lit_rlhf.dpo.config import DPOConfig
from lit_rlhf.ppo.config import PPOConfig

ConfigStore.instance().store(group="algorithm", name="ppo", node=PPOConfig)
ConfigStore.instance().store(group="algorithm", name="dpo", node=DPOConfig)
# MLflow caches a store per URI: a relative path would stay tied to the directory the process started in.
OmegaConf.register_new_resolver("abspath", lambda path: str(Path(path).resolve()), replace=True)
