"""Comparing a trained policy with the one it started from on held-out prompts: by the gym's gold judge (gym
prompts, with means and capability probes) or by a reward model (any prompts), as win/tie/loss per category."""

from __future__ import annotations

from lightning.pytorch.utilities import rank_zero_info
from omegaconf import DictConfig

from lit_rlhf.data.errors import ConfigError
from lit_rlhf.evaluation.answers import (
    flatten,
    gold_judge,
    judge_rounds,
    length_stats,
    reward_model_judge,
    sample_rounds,
)
from lit_rlhf.evaluation.gold import judge_responses
from lit_rlhf.evaluation.heldout import heldout_prompts
from lit_rlhf.evaluation.pairwise import format_table, outcomes, win_tie_loss
from lit_rlhf.generation import generate
from lit_rlhf.gym.probes import PASS_AT, probe_rates_of
from lit_rlhf.reward.model import RewardModel


def compare_with_gold(policy, sft, tokenizer, gym, options: DictConfig, seed: int, name: str = "policy") -> dict:
    """``policy`` vs SFT on held-out prompts, several samples each, judged by the gold judge (evaluation only).

    Both models sample with the same seeds (common random numbers, see ``evaluation.answers``), so
    identical models tie everywhere. ``name`` labels the printed table. Returns the win/tie/loss
    table, mean gold scores of the first round (``gold_policy``, ``gold_sft``), the judged answers'
    lengths (``lengths``: ``policy`` and ``sft``) and capability-probe pass rates (``probes``, ``probes_sft``).
    """
    prompts = gym.prompts(options.split)
    texts, categories = [p.text for p in prompts], [p.category for p in prompts]
    rounds, _, table = judged_rounds(
        policy, sft, "sft", tokenizer, texts, categories, gold_judge(gym.judge), options, seed
    )
    rank_zero_info(format_table(table, name.upper(), "SFT"))
    probes = {
        key: probe_rates(model, tokenizer, gym, options, seed) for key, model in (("policy", policy), ("sft", sft))
    }
    rank_zero_info(f"capability probes (pass rate): {name.upper()} {probes['policy']}, SFT {probes['sft']}")
    return {
        "win_tie_loss": table,
        "gold_policy": judge_responses(gym.judge, prompts, rounds["policy"][0]),
        "gold_sft": judge_responses(gym.judge, prompts, rounds["sft"][0]),
        "lengths": {key: length_stats(categories, answers) for key, answers in rounds.items()},
        "probes": probes["policy"],
        "probes_sft": probes["sft"],
    }


def judged_rounds(
    policy, base, base_key: str, tokenizer, texts: list[str], categories: list[str], judge, options, seed: int
) -> tuple[dict, dict, dict]:
    """``(rounds, scores, table)``: both models' answers (``options.samples_per_prompt`` rounds of
    ``options.max_new_tokens``, seeds shared), keyed ``policy`` and ``base_key``; the ``judge``'s flat scores of
    them; and the win/tie/loss table of ``policy`` against ``base`` per category."""
    rounds = {
        key: sample_rounds(model, tokenizer, texts, options.samples_per_prompt, options.max_new_tokens, seed)
        for key, model in (("policy", policy), (base_key, base))
    }
    scores = {key: flatten(judge_rounds(judge, texts, answers), categories)[0] for key, answers in rounds.items()}
    table = win_tie_loss(outcomes(scores["policy"], scores[base_key]), flatten(rounds[base_key], categories)[1])
    return rounds, scores, table


def probe_rates(model, tokenizer, gym, options: DictConfig, seed: int, samples: int = 16) -> dict[str, float]:
    """Identity and format pass rates on held-out (val + test) probe prompts, several samples each, and the
    share of those answers that refuse (``identity_refused``, ``format_refused``: over-refusal).

    16 samples because the held-out identity prompts are few (7): 4 samples gave 28 answers and a
    standard error of about 0.09 on the pass rate, 16 give 112 answers and about 0.05.
    """
    prompts, responses = probe_answers(model, tokenizer, gym, options, seed, samples)
    return probe_rates_of(gym.judge, prompts, responses)


def probe_answers(model, tokenizer, gym, options: DictConfig, seed: int, samples: int = 16) -> tuple[list, list[str]]:
    """The held-out probe prompts ``samples`` times over and the model's answer to each (sample k seeded
    ``seed + 2000 + k``, the same for every model)."""
    base = [p for split in ("val", "test") for p in gym.prompts(split, list(PASS_AT))]
    responses = []
    for k in range(samples):
        responses += generate(
            model, tokenizer, [p.text for p in base], max_new_tokens=options.max_new_tokens, seed=seed + 2000 + k
        )
    return base * samples, responses


def compare_by_reward_model(
    policy,
    start,
    tokenizer,
    prompts: list[dict],
    reward_model,
    options,
    seed: int,
    name: str = "policy",
    baseline: str = "start",
) -> dict:
    """``policy`` vs ``start`` (the policy training began from) on held-out ``prompts`` (``{prompt, category}``
    rows), ``options.samples_per_prompt`` answers each with seeds shared by both models, judged by
    ``reward_model`` (a ``RewardModel``). Returns the win/tie/loss table per category, the mean scores of
    both, the answers' lengths and what judged them."""
    texts = [r["prompt"] for r in prompts]
    categories = [r.get("category") or "all" for r in prompts]
    judge = reward_model_judge(reward_model)
    rounds, scores, table = judged_rounds(policy, start, "start", tokenizer, texts, categories, judge, options, seed)
    rank_zero_info(
        f"judged by the reward model {options.reward_model} on {len(texts)} held-out prompts\n"
        + format_table(table, name.upper(), baseline.upper())
    )
    return {
        "judge": "reward_model",
        "reward_model": str(options.reward_model),
        "prompts": len(texts),
        "win_tie_loss": table,
        "mean_score": {
            "policy": sum(scores["policy"]) / len(scores["policy"]),
            "start": sum(scores["start"]) / len(scores["start"]),
        },
        "lengths": {key: length_stats(categories, answers) for key, answers in rounds.items()},
    }


def compare_with_start(cfg, policy, start, tokenizer, gym, heldout: list[dict], stage: str) -> dict:
    """How a stage ends: its trained ``policy`` against ``start`` (the policy it began from), as ``cfg.<stage>.eval``
    says. ``judge: gold`` (gym experiments): the gym's test prompts by the gold judge, with the capability
    probes, under ``vs_sft``. ``judge: reward_model``: ``heldout`` prompts (or ``eval.prompts``) by the reward
    model at ``eval.reward_model``, under ``vs_start``; without a reward model, no comparison (logged)."""
    options = cfg[stage].eval  # its judge checked by the stage before training (check_judge)
    seed = int(cfg.seed)
    if options.judge == "gold":
        if gym is None:
            raise ConfigError(f"{stage}.eval.judge=gold scores the gym's prompts only; use judge=reward_model")
        return {"vs_sft": compare_with_gold(policy, start, tokenizer, gym, options, seed, name=stage)}
    if options.judge is None or not options.get("reward_model"):
        rank_zero_info(f"no comparison with the starting policy: set {stage}.eval.reward_model to judge one")
        return {}
    prompts = heldout_prompts(options, heldout, f"{stage}.eval.prompts", "the held-out prompts")
    return {
        "vs_start": compare_by_reward_model(
            policy, start, tokenizer, prompts, RewardModel.load(options.reward_model), options, seed, name=stage
        )
    }
