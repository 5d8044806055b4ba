"""Preference stage: prompts -> k responses from the policy checkpoint -> simulated votes -> filtered pairs.

Writes ``samples.jsonl``, ``pairs.jsonl``, ``votes.jsonl``, ``preferences.jsonl`` (what the reward
model trains on), ``preferences_hf/`` and ``report.json`` under ``preferences.output_dir``.
"""

from __future__ import annotations

from pathlib import Path

from hydra.utils import instantiate
from lightning.pytorch.utilities import rank_zero_info
from omegaconf import DictConfig, OmegaConf

from lit_rlhf.collection.collect import (
    Collection,
    filter_and_report,
    format_report,
    gym_prompts,
    sample_pairs,
    write_collection,
)
from lit_rlhf.collection.prompt_selection import noisy_usage_log, select_prompts
from lit_rlhf.collection.response_pairs import Decoding
from lit_rlhf.collection.votes import annotate_with_simulators
from lit_rlhf.models import EMBEDDED
from lit_rlhf.stages.common import banner, seed_and_threads, write_json


def run(cfg: DictConfig) -> dict:
    seed_and_threads(cfg)
    pcfg = cfg.preferences
    out = Path(pcfg.output_dir)
    banner(f"preference collection -> {out}")
    seed = int(cfg.seed)  # sampling from the policy
    gym = instantiate(cfg.gym)  # its seed draws the usage log's noise and the annotators' votes

    log = noisy_usage_log(gym_prompts(gym, pcfg.prompts.split), float(pcfg.prompts.noise_share), gym.seed)
    scorer = instantiate(pcfg.prompts.scorer) if pcfg.prompts.get("scorer") else None
    prompts, selection = select_prompts(
        log,
        min_words=int(pcfg.prompts.min_words),
        near_duplicate_threshold=pcfg.prompts.near_duplicate_threshold,
        scorer=scorer,
        min_quality=float(pcfg.prompts.min_quality),
        max_per_category=pcfg.prompts.max_per_category,
        balance=bool(pcfg.prompts.balance),
        seed=seed,
    )

    source = str(cfg.model.get("source", "embedded"))
    model, tokenizer = _load_policy(cfg)
    decoding = Decoding(**OmegaConf.to_container(pcfg.decoding))
    samples, pairs, pair_skips = sample_pairs(model, tokenizer, prompts, int(pcfg.k), decoding, seed, source)

    acfg = pcfg.annotators
    annotators = gym.annotators(
        int(acfg.n),
        temperature=float(acfg.temperature),
        length_bias=float(acfg.length_bias),
        tie_rate=float(acfg.tie_rate),
        inconsistent_share=float(acfg.inconsistent_share),
    )
    votes = annotate_with_simulators(pairs, annotators, gym.judge, per_pair=acfg.per_pair, seed=gym.seed)
    provenance = {
        "checkpoint": source,
        "annotator_pool": OmegaConf.to_container(acfg),
        "seed": seed,
        "gym_seed": gym.seed,
        "decoding": OmegaConf.to_container(pcfg.decoding),
    }
    rows, report = filter_and_report(
        pairs,
        votes,
        min_agreement=float(pcfg.filters.min_agreement),
        drop_cycles=bool(pcfg.filters.drop_cycles),
        judge=gym.judge,
        provenance=provenance,
        pair_skips=pair_skips,
        selection=selection,
    )
    paths = write_collection(out, Collection(samples, pairs, votes, rows, report), hf=bool(pcfg.save_hf))
    report["outputs"] = paths
    write_json(out / "report.json", report)
    rank_zero_info(format_report(report))
    rank_zero_info(f"preference data set: {paths['preferences']} ({len(rows)} rows); report: {out / 'report.json'}")
    summary = {
        "preferences": paths["preferences"],
        "rows": len(rows),
        "report": str(out / "report.json"),
        "filtering": report["filtering"],
        "length": report["length"],
    }
    write_json(out / "results.json", summary)  # written last: marks the stage as done
    return summary


def _load_policy(cfg: DictConfig):
    """The policy that answers: ``cfg.model`` (an HF checkpoint, a hub name, or the embedded tiny model)."""
    source = str(cfg.model.get("source", "embedded"))
    if source != EMBEDDED and not Path(source).exists() and source.startswith((".", "/", "~")):
        raise FileNotFoundError(
            f"policy checkpoint {source!r} does not exist: run `lit-rlhf-train experiment=gym_sft` first, "
            "or set model.source to an HF checkpoint (or model=embedded to try the pipeline untrained)"
        )
    return instantiate(cfg.model)
