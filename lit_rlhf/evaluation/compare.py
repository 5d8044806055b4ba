"""Comparing a trained policy with the SFT model on held-out gym prompts: win/tie/loss, gold means, probes."""

from __future__ import annotations

from lightning.pytorch.utilities import rank_zero_info
from omegaconf import DictConfig

from lit_rlhf.evaluation.gold import judge_responses
from lit_rlhf.evaluation.pairwise import format_table, outcomes, win_tie_loss
from lit_rlhf.generation import generate
from lit_rlhf.gym.probes import PASS_AT, probe_pass_rates


def compare_with_gold(policy, sft, tokenizer, gym, options: DictConfig, seed: int, name: str = "policy") -> dict:
    """``policy`` vs SFT on held-out prompts, several samples each, judged by the gold judge (evaluation only).

    Both models sample with the same seeds (common random numbers), so identical models tie
    everywhere and differences come from the models, not from sampling luck. ``name`` labels the
    printed table. Returns the win/tie/loss table, mean gold scores (``gold_policy``,
    ``gold_sft``) and capability-probe pass rates (``probes``, ``probes_sft``).
    """
    prompts = gym.prompts(options.split)
    texts = [p.text for p in prompts]
    results, categories, scores = [], [], {"policy": [], "sft": []}
    for k in range(options.samples_per_prompt):
        for key, model in (("policy", policy), ("sft", sft)):
            responses = generate(model, tokenizer, texts, max_new_tokens=options.max_new_tokens, seed=seed + 1000 + k)
            scores[key].append([gym.judge.score_prompt(p, r).overall for p, r in zip(prompts, responses)])
            if k == 0:
                scores[f"{key}_means"] = judge_responses(gym.judge, prompts, responses)
        results += outcomes(scores["policy"][k], scores["sft"][k])
        categories += [p.category for p in prompts]
    table = win_tie_loss(results, categories)
    rank_zero_info(format_table(table, name.upper(), "SFT"))
    probes = {key: probe_rates(model, tokenizer, gym, options, seed) for key, model in (("policy", policy), ("sft", sft))}
    rank_zero_info(f"capability probes (pass rate): {name.upper()} {probes['policy']}, SFT {probes['sft']}")
    return {"win_tie_loss": table, "gold_policy": scores["policy_means"], "gold_sft": scores["sft_means"],
            "probes": probes["policy"], "probes_sft": probes["sft"]}


def probe_rates(model, tokenizer, gym, options: DictConfig, seed: int, samples: int = 4) -> dict[str, float]:
    """Identity and format pass rates on held-out (val + test) probe prompts, several samples each."""
    base = [p for split in ("val", "test") for p in gym.prompts(split, list(PASS_AT))]
    responses = []
    for k in range(samples):
        responses += generate(model, tokenizer, [p.text for p in base], max_new_tokens=options.max_new_tokens,
                              seed=seed + 2000 + k)
    return probe_pass_rates(gym.judge, base * samples, responses)
