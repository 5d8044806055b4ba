"""A small HH-RLHF file in the real format, with the kinds of bad rows the public files hold."""

import gzip
import json
from pathlib import Path
from typing import NamedTuple

import pytest

H, A = "\n\nHuman: ", "\n\nAssistant: "


def dialogue(*turns: str) -> str:
    """An HH transcript: alternating human and assistant turns, the last one the assistant's reply."""
    return "".join((H if i % 2 == 0 else A) + turn for i, turn in enumerate(turns))


def hh_pair(context: list[str], chosen: str, rejected: str) -> dict:
    return {"chosen": dialogue(*context, chosen), "rejected": dialogue(*context, rejected)}


GOOD = [
    hh_pair(
        ["What is a good way to learn to cook?"],
        "Start with a few simple recipes you like, and cook them until they feel easy.",
        "Buy a cookbook.",
    ),
    hh_pair(
        ["Hi", "Hello! How can I help?", "Can you tell me a joke?"],
        "Why did the chicken cross the road? To get to the other side.",
        "No.",
    ),
    hh_pair(
        ["How do I keep my houseplants alive?"],
        "Water them when the soil is dry.",
        "Plants need water and light and you should give them both.",
    ),
    hh_pair(["What is the capital of France?"], "Paris.", "Lyon."),
    hh_pair(
        ["Should I exercise every day?"],
        "Some movement every day is good, but rest days help your muscles recover.",
        "Yes.",
    ),
    hh_pair(
        ["Can you help me write a thank-you note?", "Sure, who is it for?", "My neighbour, for feeding my cat."],
        "Dear neighbour, thank you so much for looking after my cat while I was away.",
        "Thanks for the cat.",
    ),
    hh_pair(
        ["What time is it in Tokyo when it is noon in London?"],
        "Tokyo is eight or nine hours ahead, so about 8 or 9 pm.",
        "It is noon.",
    ),
    hh_pair(
        ["Is it safe to eat raw cookie dough?"],
        "It is safer not to: raw eggs and flour can carry bacteria.",
        "Sure, eat as much as you like.",
    ),
]
# Rows 9-11 are bad in the ways the public HH-RLHF files are: an empty final reply on either side
# (the transcript ends with "Assistant:"), and a transcript that does not parse.
EMPTY_CHOSEN = {
    "chosen": H + "How do I fix a flat tyre?" + "\n\nAssistant:",
    "rejected": dialogue("How do I fix a flat tyre?", "Take it to a shop."),
}
EMPTY_REJECTED = {
    "chosen": dialogue("Tell me about whales.", "Whales are large marine mammals."),
    "rejected": H + "Tell me about whales." + "\n\nAssistant: ",
}
UNPARSEABLE = {
    "chosen": "Human: what should I name my dog? Buddy is a classic choice.",
    "rejected": dialogue("what should I name my dog?", "Dog."),
}
HH_ROWS = GOOD[:4] + [EMPTY_CHOSEN] + GOOD[4:6] + [EMPTY_REJECTED, UNPARSEABLE] + GOOD[6:]
BAD_LINES = {"empty reply": [5, 8], "unparseable transcript": [9]}  # 1-based lines in the file


class HHFile(NamedTuple):
    path: Path
    good_rows: int
    bad_lines: dict[str, list[int]]


@pytest.fixture
def hh_small(tmp_path) -> HHFile:
    """A gzipped HH-RLHF JSONL file: 8 good rows, 2 with an empty final reply, 1 unparseable."""
    path = tmp_path / "hh" / "train.jsonl.gz"
    path.parent.mkdir()
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        for row in HH_ROWS:
            handle.write(json.dumps(row) + "\n")
    return HHFile(path, len(GOOD), BAD_LINES)
