"""Running stages from composed configs: ``train(cfg)``, the config of a planned pipeline stage, and what a
stage needs trained before it. The CLI, the pipeline, notebooks and tests all call these."""

from __future__ import annotations

from pathlib import Path

from lightning.pytorch.utilities import rank_zero_info
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from lit_rlhf.data.errors import ConfigError
from lit_rlhf.stages import get_stage


def train(cfg: DictConfig) -> dict:
    """Run ``cfg.stage`` on a composed config; importable, so notebooks and tests call the same code.

    The resolved config goes to ``<output_dir>/config.yaml`` first. ``fingerprint.json`` (what the output
    was made from, ``lit_rlhf.provenance``) is removed while the stage runs and written when it finishes,
    so a killed run is never taken for a finished one.
    """
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    from lit_rlhf.provenance import FINGERPRINT, recipe, write_fingerprint
    from lit_rlhf.stages.common import write_run_config

    stage = get_stage(cfg.stage)
    train_reward_model_variant(cfg)
    write_run_config(cfg)
    (Path(cfg.output_dir) / FINGERPRINT).unlink(missing_ok=True)
    try:
        summary = stage(cfg)
    finally:
        _finish_wandb_run()
    if rank_zero_only.rank == 0 and summary:
        write_fingerprint(cfg.output_dir, recipe(cfg))
    return summary


def _finish_wandb_run() -> None:
    """Close the W&B run a stage's ``logger=wandb`` opened: Lightning leaves it open, and the next stage in this
    process (the pipeline, a sweep, a notebook) would log into it under the first stage's name."""
    import sys

    wandb = sys.modules.get("wandb")
    if wandb is not None and getattr(wandb, "run", None) is not None:
        wandb.finish()


# Plans of ``lit-rlhf-pipeline --plan NAME`` shipped in conf/; any other name is a path to a plan file.
PLANS = {"gym": "pipeline.yaml", "files": "pipeline_files.yaml"}


def stage_plan(path: str | Path | None = None, overrides: list[str] | None = None) -> list[dict]:
    """The ``stages`` list (name, overrides, needs) of a plan: ``conf/pipeline.yaml`` (the gym, by default), a
    name in ``PLANS`` or a path. A plan's ``inputs`` (e.g. the files plan's data paths) are filled in from the
    ``inputs.NAME=VALUE`` items of ``overrides``; a missing one is a ``ConfigError`` naming it."""
    import lit_rlhf.conf

    name = "gym" if path is None else str(path)
    path = Path(lit_rlhf.conf.__file__).parent / PLANS[name] if name in PLANS else Path(name)
    if not path.exists():
        raise FileNotFoundError(f"pipeline plan {name!r}: no such file {path}; shipped plans: {sorted(PLANS)}")
    raw = OmegaConf.load(path)
    given = [o for o in overrides or [] if o.startswith("inputs.")]
    if given:
        if "inputs" not in raw:
            raise ConfigError(f"{path} takes no inputs, got {given}")
        OmegaConf.set_struct(raw.inputs, True)  # a misspelt input name fails, naming it
        try:
            raw.merge_with_dotlist(given)
        except OmegaConfBaseException as err:  # a misspelt input name: one line naming it
            raise ConfigError(f"{path}: {err}".splitlines()[0]) from None
    missing = [k for k in raw.get("inputs") or {} if OmegaConf.is_missing(raw.inputs, k)]
    if missing:
        raise ConfigError(f"the {name} plan needs " + " ".join(f"inputs.{k}=..." for k in missing))
    plan = OmegaConf.to_container(raw, resolve=True)["stages"]
    names = set()
    for i, stage in enumerate(plan):
        if not isinstance(stage, dict) or "name" not in stage:
            raise ConfigError(f"{path}: stages[{i}] needs a `name` (and optional `overrides`, `needs`), got {stage!r}")
        unknown = set(stage.get("needs", [])) - names
        if unknown:
            raise ConfigError(
                f"{path}: stages[{i}] ({stage['name']}) needs {sorted(unknown)}, which no earlier stage is"
            )
        names.add(stage["name"])
    return plan


def stage_overrides(overrides: list[str] | None) -> list[str]:
    """``overrides`` without a plan's ``inputs.*`` items: the rest apply to every stage."""
    return [o for o in overrides or [] if not o.startswith("inputs.")]


def compose(overrides: list[str] | None = None, config_name: str = "train") -> DictConfig:
    """The ``lit-rlhf-train`` config (or ``config_name``, e.g. ``eval``) with Hydra ``overrides``, as the command
    line composes it; also works inside a running Hydra app (e.g. a multirun job)::

        cfg = compose(["experiment=sft", "model.source=/path/to/model", "data.train.path=train.jsonl"])
        train(cfg)
    """
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    if GlobalHydra.instance().is_initialized():  # Hydra's own app: its search path already has lit_rlhf.conf
        return hydra_compose(config_name, overrides=list(overrides or []))
    with initialize_config_module("lit_rlhf.conf", version_base="1.3"):
        return hydra_compose(config_name, overrides=list(overrides or []))


def stage_config(name: str, overrides: list[str], plan: str | None = None):
    """The config of the stage ``name`` of ``plan`` with extra ``overrides`` (e.g. an ablation's variant)."""
    plan = {s["name"]: s for s in stage_plan(plan, overrides)}
    if name not in plan:
        raise ConfigError(f"unknown pipeline stage {name!r}; stages: {list(plan)}")
    return compose(list(plan[name].get("overrides", [])) + stage_overrides(overrides))


def train_reward_model_variant(cfg: DictConfig) -> None:
    """Train the reward model ``ppo.reward_model`` points to, when it is missing and ``ppo.reward_model_overrides``
    says how: the pipeline's reward-model stage with those overrides (e.g. an ablation without length balancing)."""
    overrides = OmegaConf.select(cfg, "ppo.reward_model_overrides")
    if not overrides or (Path(cfg.ppo.reward_model) / "config.json").exists():
        return
    target = Path(cfg.ppo.reward_model)
    rm_cfg = stage_config("reward_model", [f"paths.artifacts={cfg.paths.artifacts}", f"seed={cfg.seed}", *overrides])
    if Path(rm_cfg.output_dir) / "checkpoint" != target:
        raise ConfigError(
            f"ppo.reward_model_overrides write to {rm_cfg.output_dir}/checkpoint, but ppo.reward_model "
            f"is {target}; make them agree (run_suffix)"
        )
    rank_zero_info(f"reward model {target} is missing: training it first with {list(overrides)}")
    train(rm_cfg)
