"""The alignment gym: a seeded, synthetic stand-in for users, demonstrations and annotators."""

from lit_rlhf.gym.annotators import Label, SimulatedAnnotator, annotator_pool
from lit_rlhf.gym.environment import AlignmentGym
from lit_rlhf.gym.judge import GoldJudge, JudgeScore
from lit_rlhf.gym.prompt_bank import GymPrompt, all_prompts, parse_prompt
from lit_rlhf.gym.world import CATEGORIES

__all__ = [
    "CATEGORIES",
    "AlignmentGym",
    "GoldJudge",
    "GymPrompt",
    "JudgeScore",
    "Label",
    "SimulatedAnnotator",
    "all_prompts",
    "annotator_pool",
    "parse_prompt",
]
