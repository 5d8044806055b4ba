import pytest
import torch

from lit_rlhf.gym import AlignmentGym
from lit_rlhf.gym.comparisons import gym_preference_rows
from lit_rlhf.models import build_policy

TINY = {"hidden_size": 32, "num_layers": 1, "num_heads": 2, "intermediate_size": 64}


@pytest.fixture(scope="session")
def gym():
    return AlignmentGym(seed=0)


@pytest.fixture(scope="session")
def pair_rows(gym):
    return list(gym_preference_rows(gym, "train", categories=["harmful", "identity"]))[:24]


@pytest.fixture
def policy():
    torch.manual_seed(0)
    return build_policy("embedded", seed=0, tiny=TINY)
