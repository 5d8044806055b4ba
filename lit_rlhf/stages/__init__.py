"""The stages by name: each is ``run(cfg) -> dict`` over a composed Hydra config; ``lit_rlhf.run.train`` picks
``cfg.stage``'s."""

from __future__ import annotations

import importlib

# Imported lazily so that choosing one stage never imports another's dependencies.
STAGES = {
    "sft": "lit_rlhf.sft.stage",
    "preferences": "lit_rlhf.collection.stage",
    "reward_model": "lit_rlhf.reward.stage",
    "ppo": "lit_rlhf.ppo.stage",
    "dpo": "lit_rlhf.dpo.stage",
    "eval": "lit_rlhf.evaluation.stage",
}


def get_stage(name: str):
    """The ``run`` function of a stage; an unknown name lists the known ones."""
    if name not in STAGES:
        from lit_rlhf.data.errors import UnknownName

        raise UnknownName(f"unknown stage {name!r}; known stages: {sorted(STAGES)}")
    return importlib.import_module(STAGES[name]).run
