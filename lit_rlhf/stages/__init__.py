"""Pipeline stages: each is ``run(cfg) -> dict`` over a composed Hydra config; ``lit-rlhf-train`` dispatches by ``cfg.stage``."""

from __future__ import annotations

import importlib

# Imported lazily so that choosing one stage never imports another's dependencies.
STAGES = {
    "sft": "lit_rlhf.stages.sft",
    "preferences": "lit_rlhf.stages.preferences",
    "reward_model": "lit_rlhf.stages.reward_model",
    "ppo": "lit_rlhf.stages.ppo",
    "dpo": "lit_rlhf.stages.dpo",
    "eval": "lit_rlhf.stages.eval",
}


def get_stage(name: str):
    """The ``run`` function of a stage; an unknown name lists the known ones."""
    if name not in STAGES:
        from lit_rlhf.data.errors import UnknownName

        raise UnknownName(f"unknown stage {name!r}; known stages: {sorted(STAGES)}")
    return importlib.import_module(STAGES[name]).run
