"""Which gym prompts a stage trains or selects on, so that evaluation can prove its prompts are held out.

A stage's config says where its prompts come from: SFT and the NTP term read the gym's demonstrations
of ``data.train``, preference collection samples ``preferences.prompts.split``, a reward model
on gym pairs reads ``data.*.split``, PPO's RL prompts are the gym's train split, DPO samples
``dpo.pairs.split``. Each is read through the stage's own gym (its seed and split fractions), so a stage
run with another gym seed shows up as the prompts it really saw.
"""

from __future__ import annotations

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from lit_rlhf.data.errors import ConfigError
from lit_rlhf.data.jsonl import prompt_row, read_rows

GYM_READERS = ("lit_rlhf.sft.data.gym_sft_rows", "lit_rlhf.gym.comparisons.gym_preference_rows")


def trained_gym_prompts(cfg: DictConfig) -> dict[str, set[str]]:
    """Prompt texts of the gym that the stage ``cfg.stage`` trains or selects on, by where they enter.

    Prompts from a user's files are not the gym's and are not listed; ``eval`` trains on nothing.
    """
    if cfg.get("gym") is None:  # a run on one's own files: no gym prompt entered it
        return {}
    gym = instantiate(cfg.gym)
    stage = cfg.stage
    sources: dict[str, set[str]] = {}

    def add(name: str, split: str, categories=None) -> None:
        sources[name] = {p.text for p in gym.prompts(str(split), list(categories) if categories else None)}

    if stage in ("sft", "reward_model") or _ntp_on(cfg):
        reader = (cfg.get("data") or {}).get("train")  # val and test rows are only scored, never fit
        if reader is not None and reader.get("_target_") in GYM_READERS:
            add("data.train", reader.split, reader.get("categories"))
    if stage == "preferences":
        add("preferences.prompts", cfg.preferences.prompts.split)
    if stage == "ppo" and (cfg.ppo.get("prompts") or {}).get("path") is None:
        add("ppo.prompts", "train", cfg.ppo.categories)
    if stage == "dpo" and cfg.dpo.pairs.source == "policy":
        add("dpo.pairs", cfg.dpo.pairs.split, cfg.dpo.pairs.categories)
    return sources


def _ntp_on(cfg: DictConfig) -> bool:
    """PPO and DPO read SFT batches from ``cfg.data`` for their next-token-prediction term."""
    return cfg.stage in ("ppo", "dpo") and float(OmegaConf.select(cfg, "module.config.ntp_coef", default=0.0)) > 0


def eval_overlap(run_cfg: DictConfig, eval_texts: list[str]) -> dict[str, int]:
    """How many of ``eval_texts`` each prompt source of the run ``run_cfg`` trained on (only non-zero counts)."""
    wanted = set(eval_texts)
    counts = {name: len(texts & wanted) for name, texts in trained_gym_prompts(run_cfg).items()}
    return {name: n for name, n in counts.items() if n}


def provenance_overlap(run_dir, eval_texts: list[str]) -> dict[str, int]:
    """Eval prompts trained on by the run in ``run_dir`` or by any earlier run it read, by ``<dir>: <source>``.

    Follows each run's ``config.yaml`` (written by every stage) to the runs whose outputs it read: a PPO
    policy leads to its SFT checkpoint and its reward model, the reward model to the preference data, and so
    on. Runs without a ``config.yaml`` (e.g. a checkpoint from elsewhere) end the walk.
    """
    from pathlib import Path

    from lit_rlhf.provenance import run_dir_of, run_inputs
    from lit_rlhf.stages.common import read_run_config

    found: dict[str, int] = {}
    todo, seen = [Path(run_dir)], set()
    while todo:
        run = todo.pop()
        if run in seen:
            continue
        seen.add(run)
        cfg = read_run_config(run)
        if cfg is None:
            continue
        found.update({f"{run}: {name}": n for name, n in eval_overlap(cfg, eval_texts).items()})
        for path in map(Path, run_inputs(cfg).values()):
            if path.exists():  # hub names and "embedded" are not runs
                todo.append(run_dir_of(path))
    return found


# What a stage's comparison with its starting policy can be judged by: the gym's gold judge (gym prompts only)
# or a reward model (any prompts); null turns the comparison off.
JUDGES = ("gold", "reward_model")


def check_judge(options: DictConfig, key: str) -> None:
    """``ConfigError`` naming ``key`` unless ``options.judge`` is one of ``JUDGES`` or null."""
    judge = options.get("judge")
    if judge is not None and judge not in JUDGES:
        raise ConfigError(f"{key}.judge must be one of {list(JUDGES)} or null, got {judge!r}")


def heldout_prompts(
    options: DictConfig, fallback: list[dict], key: str, fallback_name: str, trained: set[str] = frozenset()
) -> list[dict]:
    """``{prompt, category}`` rows to compare a trained policy with its start on: the JSONL file at
    ``options.prompts`` when set, else the distinct prompts of ``fallback`` rows (e.g. the validation data).
    Prompts in ``trained`` (what training saw) are left out either way; none left is a ``ConfigError``."""
    if options.get("prompts"):
        rows, source = read_rows(str(options.prompts), prompt_row), str(options.prompts)
    else:
        rows, source = fallback, fallback_name
    seen, kept = set(trained), []
    for row in rows:
        if row["prompt"] not in seen:
            seen.add(row["prompt"])
            kept.append({"prompt": row["prompt"], "category": row.get("category") or "all"})
    if not kept:
        raise ConfigError(
            f"no held-out prompts to compare on: {source} has none that training did not see; "
            f"set {key} to a JSONL of held-out prompts"
        )
    return kept
