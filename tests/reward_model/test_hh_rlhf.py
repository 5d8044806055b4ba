import gzip
import json

import pytest

from lit_rlhf.data.errors import DataError, SkipReport
from lit_rlhf.data.formatting import prompt_text
from lit_rlhf.data.hh_rlhf import hh_row, read_hh_rlhf, split_transcript
from lit_rlhf.data.preference_files import read_preferences

SINGLE = "\n\nHuman: what is 2 plus 2?\n\nAssistant: It is 4."
MULTI_CHOSEN = (
    "\n\nHuman: hi\n\nAssistant: Hello! How can I help?\n\nHuman: tell me a joke"
    "\n\nAssistant: Why did the chicken cross the road?"
)
MULTI_REJECTED = "\n\nHuman: hi\n\nAssistant: Hello! How can I help?\n\nHuman: tell me a joke\n\nAssistant: No."


def test_single_turn_split():
    assert split_transcript(SINGLE) == ("what is 2 plus 2?", "It is 4.")


def test_multi_turn_keeps_the_dialogue_in_the_prompt():
    prompt, chosen, rejected = hh_row(MULTI_CHOSEN, MULTI_REJECTED)
    assert prompt == "hi\n\nAssistant: Hello! How can I help?\n\nHuman: tell me a joke"
    assert (chosen, rejected) == ("Why did the chicken cross the road?", "No.")

    class NoTemplate:
        chat_template = None

    # The HH framing of the shared formatter rebuilds the original transcript up to the reply.
    assert prompt_text(NoTemplate(), prompt) + " " + chosen == MULTI_CHOSEN


def test_unparseable_transcripts_name_the_problem():
    with pytest.raises(ValueError, match="no 'Assistant:'"):
        split_transcript("\n\nHuman: hello there")
    with pytest.raises(ValueError, match="'Human:'"):
        split_transcript("Assistant: hi")
    with pytest.raises(ValueError, match="differ before the final reply"):
        hh_row(SINGLE, "\n\nHuman: something else\n\nAssistant: x")


def write(path, rows, gz=False):
    text = "".join(json.dumps(r) + "\n" for r in rows)
    if gz:
        with gzip.open(path, "wt") as handle:
            handle.write(text)
    else:
        path.write_text(text)
    return path


def test_read_gzipped_file_and_auto_format(tmp_path):
    path = write(tmp_path / "hh.jsonl.gz", [{"chosen": MULTI_CHOSEN, "rejected": MULTI_REJECTED}], gz=True)
    rows = read_preferences(path)
    assert rows[0]["category"] == "hh" and rows[0]["rejected"] == "No."
    assert rows.report.kept == 1


def test_bad_rows_raise_with_file_and_line_or_are_counted(tmp_path):
    rows = [
        {"chosen": SINGLE, "rejected": SINGLE.replace("It is 4.", "5")},
        {"chosen": "no markers at all", "rejected": SINGLE},
        {"chosen": SINGLE, "rejected": SINGLE},
        {"chosen": "\n\nHuman: what is 2 plus 2?\n\nAssistant:", "rejected": SINGLE},
        {"rejected": SINGLE},
    ]
    path = write(tmp_path / "hh.jsonl", rows)
    with pytest.raises(DataError, match=rf"{path}:2: unparseable HH transcript: chosen transcript"):
        read_hh_rlhf(path)
    report = SkipReport()
    kept = read_hh_rlhf(path, on_error="skip", report=report)
    assert len(kept) == 1 and report.kept == 1
    assert report.counts == {
        "unparseable transcript": 1,
        "identical replies": 1,
        "empty reply": 1,
        "bad field 'chosen'": 1,
    }
    assert f"{path}:3" in report.summary()
