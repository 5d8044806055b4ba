"""A user's own reward function, as a project would keep it: named by ``_target_`` in ``ppo.reward_parts``."""


def says_please(prompts: list[str], responses: list[str], bonus: float = 1.0) -> list[float]:
    return [bonus * ("please" in r.split()) for r in responses]
