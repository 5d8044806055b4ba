"""The commands of README.md and tutorials/*.md as steps to execute, grouped into scripts.

A *step* is one shell line of a ``bash`` block (``\\`` continuations joined, a heredoc's body kept as the
line's stdin) or one ``python`` block, with the comment lines printed right under it on the page: what the
page says the command writes (``# -> path``), prints, or fails with (``# lit-rlhf-train: error: ...``).

A *script* is what one test executes in one sandbox, in order. By default each command is a script of its
own, preceded by the shell-state lines of its block above it (``export``, ``cd``, ``mkdir``). The sections
named in ``WALKTHROUGHS`` are read top to bottom, each step using what the steps above it wrote, so each is
one script.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "tutorials").glob("*.md"))]

# Sections that are walkthroughs: (page, first heading, heading that ends it or None for the page's end, slow).
# Their steps depend on the steps above them (a file written, a server's labels, an `export`). Slow: more than
# a few seconds (tutorial 1's example trains on a handful of rows).
WALKTHROUGHS = [
    ("tutorials/01_your_own_model_and_data.md", "Worked example (offline, on a laptop CPU)", None, False),
    ("tutorials/02_hydra_cookbook.md", "Sweeps and ablations", "Where outputs go", True),
    ("tutorials/03_lightning_integration.md", "SFT", None, True),
    (
        "tutorials/05_human_annotation_and_evaluation.md",
        "Part 1: collecting preferences",
        "Your prompts and your checkpoints",
        True,
    ),
]
SHELL_STATE = {"export", "cd", "mkdir"}  # lines that set up the shell for the lines below them
SHELL_OPERATORS = {"&&", "||", ";", "|"}
# Stand-in values of the shell variables the pages use (multi-node values are never run here).
SHELL_VARIABLES = {
    "USER": "user",
    "HEAD_NODE": "head-node",
    "SLURM_NNODES": "2",
    "SLURM_NTASKS_PER_NODE": "8",
    "SLURM_CPUS_PER_TASK": "12",
}


@dataclass
class Step:
    page: str  # relative to the repository root
    line: int
    kind: str  # "shell" | "python"
    text: str  # the joined shell line, or the python block's source
    heading: str  # the nearest heading above it
    block: int  # first line of its code block
    stdin: str = ""  # a heredoc's body
    shown: list[str] = field(default_factory=list)  # comment lines right under it

    def __str__(self) -> str:
        return f"{self.page}:{self.line}"

    def segments(self) -> list[list[str]]:
        """The shell words of each command of the line (split at ``&&``, ``;``, ``||``, ``|``), variables filled in."""
        assert self.kind == "shell"
        text = re.sub(r"\$\{?([A-Z_][A-Z0-9_]*)\}?", lambda m: SHELL_VARIABLES.get(m.group(1), m.group(0)), self.text)
        out, current = [], []
        for word in shlex.split(text, comments=True):
            if word in SHELL_OPERATORS:
                out.append(current)
                current = []
            else:
                current.append(word)
        return [s for s in [*out, current] if s]


@dataclass
class Script:
    name: str  # page:line of its first step, or the walkthrough's heading
    steps: list[Step]
    walkthrough: bool = False
    slow: bool = False


def _blocks(text: str) -> list[tuple[str, int, list[str], str]]:
    """``(language, first body line number, body lines, nearest heading)`` of each fenced block."""
    blocks, heading, inside, start, body = [], "", None, 0, []
    for number, line in enumerate(text.splitlines(), start=1):
        fence = re.match(r"^\s*```(\S*)\s*$", line)
        if inside is None and fence:
            inside, start, body = fence.group(1), number + 1, []
        elif inside is not None and fence and not fence.group(1):
            blocks.append((inside, start, body, heading))
            inside = None
        elif inside is not None:
            body.append(line)
        elif (title := re.match(r"^#{1,6}\s+(.+?)\s*$", line)) is not None:
            heading = title.group(1)
    assert inside is None, f"unclosed code block starting at line {start - 1}"
    return blocks


def headings(page: Path) -> list[tuple[int, str]]:
    """``(line, heading)`` of every heading outside code blocks."""
    out, inside = [], False
    for number, line in enumerate(page.read_text().splitlines(), start=1):
        if re.match(r"^\s*```", line):
            inside = not inside
        elif not inside and (title := re.match(r"^#{1,6}\s+(.+?)\s*$", line)) is not None:
            out.append((number, title.group(1)))
    return out


def shell_steps(page: str, start: int, body: list[str], heading: str) -> list[Step]:
    """One step per logical line; comment lines directly under a command (no blank line between) are its ``shown``."""
    steps, i, last = [], 0, None
    while i < len(body):
        number, line = start + i, body[i]
        while line.rstrip().endswith("\\"):
            i += 1
            assert i < len(body), f"{page}:{number}: a line continuation ends the block"
            line = line.rstrip()[:-1] + " " + body[i]
        i += 1
        stdin = ""
        if (tag := re.search(r"<<-?\s*['\"]?(\w+)['\"]?", line)) is not None:
            end = next((j for j in range(i, len(body)) if body[j].strip() == tag.group(1)), None)
            assert end is not None, f"{page}:{number}: heredoc {tag.group(1)} is never closed"
            stdin, i = "\n".join(body[i:end]), end + 1
        stripped = line.strip()
        if not stripped:
            last = None
        elif stripped.startswith("#"):
            if last is not None:
                last.shown.append(stripped[1:].strip())
        else:
            last = Step(page, number, "shell", stripped, heading, start, stdin)
            steps.append(last)
    return steps


def page_steps(page: Path) -> list[Step]:
    name = str(page.relative_to(ROOT))
    steps = []
    for language, start, body, heading in _blocks(page.read_text()):
        if language in ("bash", "sh", "shell"):
            steps.extend(shell_steps(name, start, body, heading))
        elif language == "python":
            steps.append(Step(name, start, "python", "\n".join(body), heading, start))
    return steps


def is_shell_state(step: Step) -> bool:
    return step.kind == "shell" and all(s[0] in SHELL_STATE for s in step.segments())


def _walkthrough_span(page: Path, first: str, end: str | None) -> tuple[int, int]:
    lines = {title: number for number, title in headings(page)}
    assert first in lines, f"{page.name}: no heading {first!r} (tests/doc_scripts.py WALKTHROUGHS)"
    assert end is None or end in lines, f"{page.name}: no heading {end!r} (tests/doc_scripts.py WALKTHROUGHS)"
    return lines[first], lines[end] if end else 10**9


def scripts() -> list[Script]:
    """Every step of every page in exactly one script."""
    out = []
    for page in PAGES:
        name = str(page.relative_to(ROOT))
        spans = [
            (_walkthrough_span(page, first, end), first, slow) for p, first, end, slow in WALKTHROUGHS if p == name
        ]
        steps, taken = page_steps(page), set()
        for (begin, end), title, slow in spans:
            inside = [s for s in steps if begin < s.line < end]
            out.append(Script(f"{name}: {title}", inside, walkthrough=True, slow=slow))
            taken |= {s.line for s in inside}
        setup: list[Step] = []  # the shell-state lines above, in the same block
        for step in steps:
            if step.line in taken:
                continue
            if setup and setup[-1].block != step.block:
                setup = []
            if is_shell_state(step):
                setup.append(step)
            else:
                out.append(Script(str(step), [*setup, step]))
    return out
