"""Rule-based rewards for gym prompts, usable as reward parts (``lit_rlhf.ppo.reward_parts``).

Verifiers check what can be checked without a judge: the number a math answer ends with, and whether a
format answer is the JSON object asked for. A prompt of another category scores 0 (the verifier has nothing
to say about it), so a verifier adds to a reward model instead of replacing it.
"""

from __future__ import annotations

from lit_rlhf.gym.judge import answer_object, final_number
from lit_rlhf.gym.prompt_bank import parse_prompt


class MathAnswer:
    """``correct`` when a math answer's last number is the right one, ``wrong`` when another number, 0 without one."""

    def __init__(self, correct: float = 1.0, wrong: float = 0.0):
        self.correct, self.wrong = float(correct), float(wrong)

    def __call__(self, prompts: list[str], responses: list[str]) -> list[float]:
        out = []
        for prompt, response in zip(prompts, responses, strict=True):
            task, number = parse_prompt(prompt), final_number(response)
            if task.category != "math" or number is None:
                out.append(0.0)
            else:
                out.append(self.correct if number == task.target else self.wrong)
        return out


class JsonAnswer:
    """1 when a format answer is exactly a JSON object ``{"answer": ...}``, else 0; 0 for other categories."""

    def __call__(self, prompts: list[str], responses: list[str]) -> list[float]:
        return [
            float(parse_prompt(prompt).category == "format" and answer_object(response) is not None)
            for prompt, response in zip(prompts, responses, strict=True)
        ]
