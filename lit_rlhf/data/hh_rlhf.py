"""Anthropic HH-RLHF transcripts -> preference rows ``{prompt, chosen, rejected, category}``.

Each HH row holds two full dialogues, ``chosen`` and ``rejected``, of the form
``"\\n\\nHuman: ...\\n\\nAssistant: ...\\n\\nHuman: ...\\n\\nAssistant: <reply>"``; they share every
turn but the final assistant reply. The shared part becomes the prompt and the two final
replies become the responses. Multi-turn context is kept: the prompt is the transcript
text between the first ``Human:`` marker and the final ``Assistant:`` marker, so that
:func:`lit_rlhf.data.formatting.prompt_text` (which frames a prompt as
``"\\n\\nHuman: {prompt}\\n\\nAssistant:"`` for tokenizers without a chat template)
reproduces the original transcript exactly.
"""

from __future__ import annotations

import os

from lit_rlhf.data.errors import DataError, ReportedRows, SkipReport
from lit_rlhf.data.jsonl import read_rows, require_text

HUMAN = "\n\nHuman:"
ASSISTANT = "\n\nAssistant:"


def split_transcript(text: str) -> tuple[str, str]:
    """``(prompt, final_reply)`` of one HH transcript.

    Raises ``ValueError`` when the text has no ``Human:`` turn or no ``Assistant:`` turn after
    it. The reply may be empty (the caller decides what an empty reply means).
    """
    text = text if text.startswith("\n\n") else "\n\n" + text.lstrip("\n")  # some rows drop the leading newlines
    if not text.startswith(HUMAN):
        raise ValueError("does not start with a 'Human:' turn")
    cut = text.rfind(ASSISTANT)
    if cut < 0:
        raise ValueError("has no 'Assistant:' turn")
    prompt = text[len(HUMAN) : cut].strip()
    reply = text[cut + len(ASSISTANT) :].strip()
    if not prompt:
        raise ValueError("has an empty human turn")
    return prompt, reply


def hh_row(chosen_text: str, rejected_text: str) -> tuple[str, str, str]:
    """``(prompt, chosen_reply, rejected_reply)`` from a pair of HH transcripts; ``ValueError`` names the side."""
    try:
        prompt, chosen = split_transcript(chosen_text)
    except ValueError as err:
        raise ValueError(f"chosen transcript {err}") from None
    try:
        rejected_prompt, rejected = split_transcript(rejected_text)
    except ValueError as err:
        raise ValueError(f"rejected transcript {err}") from None
    if rejected_prompt != prompt:
        raise ValueError("chosen and rejected transcripts differ before the final reply")
    return prompt, chosen, rejected


def read_hh_rlhf(
    path: str | os.PathLike,
    on_error: str = "raise",
    category: str = "hh",
    report: SkipReport | None = None,
    max_rows: int | None = None,
) -> list[dict]:
    """Preference rows from an HH-RLHF JSONL file (``.jsonl`` or ``.jsonl.gz``).

    Missing fields, unparseable transcripts, empty final replies and identical replies raise
    ``DataError`` naming file:line; with ``on_error="skip"`` such rows are counted in
    ``report`` by reason instead (malformed JSON always raises: a broken file is not a bad row).
    The public HH-RLHF files hold a few such rows, which is why ``read_preferences`` skips
    them by default for this format. ``max_rows`` stops after that many usable rows.
    """
    report = report if report is not None else SkipReport()

    def parse(raw: dict, source: str, line: int) -> dict:
        chosen_text = require_text(raw, "chosen", source, line)
        rejected_text = require_text(raw, "rejected", source, line)
        try:
            prompt, chosen, rejected = hh_row(chosen_text, rejected_text)
        except ValueError as err:
            raise DataError(f"unparseable HH transcript: {err}", source, line) from None
        for key, reply in (("chosen", chosen), ("rejected", rejected)):
            if not reply:
                raise DataError("final assistant reply is empty", source, line, key)
        if chosen == rejected:
            raise DataError("chosen and rejected replies are identical", source, line)
        return {"prompt": prompt, "chosen": chosen, "rejected": rejected, "category": category}

    return ReportedRows(read_rows(path, parse, on_error, report, _reason, max_rows), report)


def _reason(err: DataError) -> str:
    message = str(err).split(": ", 1)[-1]
    if "unparseable" in message:
        return "unparseable transcript"
    if "identical" in message:
        return "identical replies"
    if "empty" in message and "reply" in message:
        return "empty reply"
    return f"bad field {err.field!r}"
