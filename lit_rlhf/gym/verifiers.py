"""Rule-based rewards for gym prompts, usable as reward parts (``lit_rlhf.ppo.reward_parts``).

Verifiers check what can be checked without a judge: the number a math answer ends with, and whether a
format answer is the JSON object asked for. A prompt of another category scores 0 (the verifier has nothing
to say about it), so a verifier adds to a reward model instead of replacing it.
"""

from __future__ import annotations

import json

from lit_rlhf.gym.prompt_bank import parse_prompt


class MathAnswer:
    """``correct`` when a math answer's last number is the right one, ``wrong`` when another number, 0 without one."""

    def __init__(self, correct: float = 1.0, wrong: float = 0.0):
        self.correct, self.wrong = float(correct), float(wrong)

    def __call__(self, prompts: list[str], responses: list[str]) -> list[float]:
        out = []
        for prompt, response in zip(prompts, responses, strict=True):
            task = parse_prompt(prompt)
            numbers = [w for w in response.split() if w.isdigit()]
            if task.category != "math" or not numbers:
                out.append(0.0)
            else:
                out.append(self.correct if numbers[-1] == task.target else self.wrong)
        return out


class JsonAnswer:
    """1 when a format answer is exactly a JSON object ``{"answer": ...}``, else 0; 0 for other categories."""

    def __call__(self, prompts: list[str], responses: list[str]) -> list[float]:
        out = []
        for prompt, response in zip(prompts, responses, strict=True):
            if parse_prompt(prompt).category != "format":
                out.append(0.0)
                continue
            try:
                parsed = json.loads(response)
            except ValueError:
                parsed = None
            out.append(float(isinstance(parsed, dict) and set(parsed) == {"answer"}))
        return out
