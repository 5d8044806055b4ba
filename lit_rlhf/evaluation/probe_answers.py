"""``python -m lit_rlhf.evaluation.probe_answers``: what checkpoints answer on a gym's capability probes.

A probe's pass rate says that answers changed, not into what. This prints, per checkpoint and probe
category, the commonest answers to the held-out probe prompts (the samples ``probe_rates`` judges) with
their counts, the pass rate and the share that refuse::

    python -m lit_rlhf.evaluation.probe_answers --gym-seed 11 \\
        artifacts/gym_seeds/g11/sft/checkpoint artifacts/gym_seeds/g11/ppo/checkpoint
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

from omegaconf import OmegaConf

from lit_rlhf.evaluation.compare import probe_answers
from lit_rlhf.gym import AlignmentGym
from lit_rlhf.gym.probes import PASS_AT, probe_rates_of
from lit_rlhf.models import build_policy


def answer_counts(prompts: list, responses: list[str]) -> dict[str, Counter]:
    """Per probe category, how often each (stripped) answer was given."""
    counts: dict[str, Counter] = {category: Counter() for category in PASS_AT}
    for prompt, response in zip(prompts, responses, strict=True):
        counts[prompt.category][response.strip()] += 1
    return counts


def describe(name: str, gym: AlignmentGym, prompts: list, responses: list[str], top: int) -> str:
    rates = probe_rates_of(gym.judge, prompts, responses)
    lines = [f"== {name}"]
    for category, counts in answer_counts(prompts, responses).items():
        total = sum(counts.values())
        lines.append(
            f"{category}: {total} answers, pass rate {rates[category]:.2f}, refusing {rates[f'{category}_refused']:.2f}"
        )
        lines += [f"  {n:4d}  {answer}" for answer, n in counts.most_common(top)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lit_rlhf.evaluation.probe_answers", description=__doc__.split("\n")[0]
    )
    parser.add_argument("checkpoints", nargs="+", type=Path, help="policy checkpoints (HF model folders)")
    parser.add_argument("--gym-seed", type=int, default=0, help="the gym whose held-out probe prompts to ask")
    parser.add_argument("--samples", type=int, default=16, help="answers per prompt (the probes' 16 by default)")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed (the evaluation's 0 by default)")
    parser.add_argument("--top", type=int, default=5, help="answers shown per category")
    parser.add_argument("--max-new-tokens", type=int, default=24)
    args = parser.parse_args(argv)
    missing = [str(p) for p in args.checkpoints if not p.is_dir()]
    if missing:
        parser.error(f"no checkpoint folder at {', '.join(missing)}")
    if args.samples < 1 or args.top < 1:
        parser.error("--samples and --top must be at least 1")
    gym = AlignmentGym(seed=args.gym_seed)
    options = OmegaConf.create({"max_new_tokens": args.max_new_tokens})
    for path in args.checkpoints:
        model, tokenizer = build_policy(str(path))
        prompts, responses = probe_answers(model.eval(), tokenizer, gym, options, args.seed, args.samples)
        print(describe(str(path), gym, prompts, responses, args.top))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
