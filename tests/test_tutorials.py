"""The tutorials stay true to the code: every command in their bash blocks composes against the real
configs, every ``lit_rlhf`` import in their Python blocks exists, and every relative link resolves.

Here commands are composed, not run (tests/test_documented_commands.py runs them end to end, shrunk):
``lit-rlhf-train`` lines with Hydra's compose API on ``lit_rlhf.conf`` (config ``train``),
``lit-rlhf-eval`` lines as ``experiment=gym_eval`` plus their overrides, ``lit-rlhf-pipeline`` lines
once per stage of their plan (``--plan``), ``lit-rlhf-annotate`` lines through its argument parser.
Multirun sweeps (``a=1,2``) are composed with their first value.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import importlib.util
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TUTORIALS = ROOT / "tutorials"
PAGES = sorted(TUTORIALS.glob("*.md"))
EVAL_EXPERIMENT = ROOT / "conf" / "experiment" / "gym_eval.yaml"

PROGRAMS = {
    "lit-rlhf-train": "train",
    "lit_rlhf.cli.train": "train",  # the module form is what torchrun -m runs
    "lit-rlhf-eval": "eval",
    "lit_rlhf.cli.eval": "eval",
    "lit-rlhf-pipeline": "pipeline",
    "lit_rlhf.pipeline": "pipeline",
    "lit-rlhf-annotate": "annotate",
    "lit_rlhf.cli.annotate": "annotate",
}
# Hydra's own command-line flags: the ones without a value, and those that take one.
HYDRA_FLAGS = {"-m", "--multirun", "--resolve", "--help", "-h", "--hydra-help"}
HYDRA_FLAGS_WITH_VALUE = {
    "--cfg": {"job", "hydra", "all"},
    "-c": {"job", "hydra", "all"},
    "--package": None,
    "-p": None,
}
SHELL_OPERATORS = {"&&", "||", ";", "|"}
# Upper-case shell variables ($SLURM_NNODES, ${HEAD_NODE}) get a stand-in value: composing checks
# keys, not values. Lower-case ${...} is a Hydra interpolation and stays.
SHELL_VARIABLE = re.compile(r"\$\{?([A-Z_][A-Z0-9_]*)\}?")
PLACEHOLDER = re.compile(r"<[^<>\s]+>")  # <name> in a command: a value the reader fills in
MAX_SKIPPED = 0  # commands with placeholders that cannot be composed; every command composes today


@dataclass(frozen=True)
class Command:
    page: str
    line: int
    program: str  # train | eval | pipeline | annotate
    args: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.page}:{self.line}: {self.program} {' '.join(self.args)}"[:160]


def code_blocks(text: str, languages: tuple[str, ...]) -> list[tuple[int, str]]:
    """``(first line number, body)`` of each fenced block in one of ``languages``."""
    blocks, inside, start, body = [], None, 0, []
    for number, line in enumerate(text.splitlines(), start=1):
        fence = re.match(r"^\s*```(\S*)\s*$", line)
        if fence and inside is None:
            inside, start, body = fence.group(1), number + 1, []
        elif fence and not fence.group(1):
            if inside in languages:
                blocks.append((start, "\n".join(body)))
            inside = None
        elif inside is not None:
            body.append(line)
    assert inside is None, f"unclosed code block starting at line {start - 1}"
    return blocks


def logical_lines(start: int, body: str) -> list[tuple[int, str]]:
    """Shell lines with ``\\`` continuations joined, heredoc bodies left out."""
    out, pending, first, heredoc = [], "", start, None
    for number, line in enumerate(body.splitlines(), start=start):
        if heredoc is not None:
            heredoc = None if line.strip() == heredoc else heredoc
            continue
        if not pending:
            first = number
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        full, pending = pending + line, ""
        tag = re.search(r"<<-?\s*['\"]?(\w+)['\"]?", full)
        heredoc = tag.group(1) if tag else None
        out.append((first, full))
    assert not pending, f"a line continuation at the end of the block starting at line {start}"
    return out


def commands_in(text: str, page: str) -> list[Command]:
    found = []
    for start, body in code_blocks(text, ("bash", "sh", "shell")):
        for number, line in logical_lines(start, body):
            words = shlex.split(SHELL_VARIABLE.sub("1", line), comments=True)
            segments, current = [], []
            for word in words:
                if word in SHELL_OPERATORS:
                    segments.append(current)
                    current = []
                else:
                    current.append(word)
            segments.append(current)
            for segment in segments:
                for i, word in enumerate(segment):
                    program = PROGRAMS.get(word.rstrip(")").rsplit("/", 1)[-1])
                    if program:
                        found.append(Command(page, number, program, tuple(segment[i + 1 :])))
                        break
    return found


def all_commands() -> tuple[list[Command], list[Command]]:
    """``(composable, skipped)``: commands holding a ``<placeholder>`` are skipped (and counted)."""
    commands = [c for page in PAGES for c in commands_in(page.read_text(), page.name)]
    skipped = [c for c in commands if any(PLACEHOLDER.search(a) for a in c.args)]
    return [c for c in commands if c not in skipped], skipped


COMMANDS, SKIPPED = all_commands()


def by_program(program: str) -> list[Command]:
    return [c for c in COMMANDS if c.program == program]


def hydra_overrides(command: Command) -> list[str]:
    """The overrides of a Hydra command line, without Hydra's flags; a sweep becomes its first value."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    args, overrides, multirun = list(command.args), [], False
    while args:
        arg = args.pop(0)
        if arg in HYDRA_FLAGS:
            multirun |= arg in ("-m", "--multirun")
        elif arg in HYDRA_FLAGS_WITH_VALUE:
            assert args, f"{command}: {arg} needs a value"
            value, allowed = args.pop(0), HYDRA_FLAGS_WITH_VALUE[arg]
            assert allowed is None or value in allowed, f"{command}: {arg} {value!r} is not one of {sorted(allowed)}"
        else:
            assert not arg.startswith("-"), f"{command}: unknown flag {arg!r}"
            overrides.append(arg)
    parsed = OverridesParser.create().parse_overrides(overrides)
    composed = []
    for text, override in zip(overrides, parsed):
        if override.is_sweep_override():
            assert multirun, f"{command}: the sweep {text!r} needs -m (multirun)"
            composed.append(f"{override.get_key_element()}={next(iter(override.sweep_string_iterator()))}")
        else:
            composed.append(text)
    return composed


@pytest.fixture(scope="module")
def compose():
    """Hydra's compose on the package configs, initialised once for this module (about 0.05 s a call)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module

    with initialize_config_module("lit_rlhf.conf", version_base="1.3"):
        yield lambda overrides: hydra_compose("train", overrides=overrides)


def check_composed(cfg) -> None:
    """Resolve every interpolation and build the objects that validate themselves when built."""
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    OmegaConf.to_container(cfg, resolve=True)
    if "strategy" in cfg:
        instantiate(cfg.strategy)  # bad sharding strategy or dtype names fail here
    if cfg.get("module") and "config" in cfg.module:
        OmegaConf.to_object(cfg.module.config)  # PPOConfig/DPOConfig check their values (e.g. fused_backward)


def test_the_tutorials_exist_and_hold_commands():
    names = {p.name for p in PAGES}
    assert {
        "README.md",
        "01_your_own_model_and_data.md",
        "02_hydra_cookbook.md",
        "03_lightning_integration.md",
        "04_scaling_out_fsdp.md",
        "05_human_annotation_and_evaluation.md",
    } <= names
    # so that a broken extractor (which would find nothing and pass everything) fails here
    assert len(by_program("train")) >= 60 and len(by_program("eval")) >= 6
    assert len(by_program("pipeline")) >= 5 and len(by_program("annotate")) >= 4
    assert {c.page for c in by_program("train")} >= {p.name for p in PAGES if p.name[:2] in ("01", "02", "04")}


def test_few_commands_are_skipped():
    assert len(SKIPPED) <= MAX_SKIPPED, [str(c) for c in SKIPPED]


EXTRACTOR_SAMPLE = """\
```bash
cd x && lit-rlhf-train -m a=1,2 \\
    b=3   # a comment
python - <<'END'
lit-rlhf-train inside=heredoc
END
srun lit-rlhf-eval 'c={d: 1}' e=$SLURM_NNODES
torchrun --nnodes 2 -m lit_rlhf.cli.train f=4
```
```python
lit-rlhf-train not=bash
```
"""


def test_the_extractor_joins_continuations_drops_heredocs_and_finds_each_program():
    found = commands_in(EXTRACTOR_SAMPLE, "page.md")
    assert [(c.line, c.program, c.args) for c in found] == [
        (2, "train", ("-m", "a=1,2", "b=3")),
        (7, "eval", ("c={d: 1}", "e=1")),
        (8, "train", ("f=4",)),
    ]
    assert hydra_overrides(found[0]) == ["a=1", "b=3"]
    with pytest.raises(AssertionError, match="needs -m"):
        hydra_overrides(Command("page.md", 1, "train", ("a=1,2",)))


@pytest.mark.parametrize("command", by_program("train"), ids=str)
def test_train_commands_compose(compose, command):
    check_composed(compose(hydra_overrides(command)))


@pytest.mark.parametrize("command", by_program("eval"), ids=str)
def test_eval_commands_compose(compose, command):
    if not EVAL_EXPERIMENT.exists():
        pytest.skip(f"{EVAL_EXPERIMENT.relative_to(ROOT)} does not exist yet, so lit-rlhf-eval lines cannot compose")
    cfg = compose(["experiment=gym_eval", *hydra_overrides(command)])
    assert cfg.stage == "eval"
    check_composed(cfg)


@pytest.mark.parametrize("command", by_program("pipeline"), ids=str)
def test_pipeline_commands_compose_for_every_stage(compose, command):
    from lit_rlhf.run import stage_overrides, stage_plan

    parser = argparse.ArgumentParser()  # the pipeline's own arguments (lit_rlhf.pipeline.main)
    parser.add_argument("overrides", nargs="*")
    parser.add_argument("--only", nargs="+")
    parser.add_argument("--force", nargs="+")
    parser.add_argument("--plan", default="gym")
    args = parser.parse_args(list(command.args))
    plan = stage_plan(args.plan, args.overrides)  # the plan's inputs.* filled in from the overrides
    names = [stage["name"] for stage in plan]
    assert set(args.only or []) <= set(names), f"{command}: --only names an unknown stage"
    assert set(args.force or []) <= {*names, "all"}, f"{command}: --force names an unknown stage"
    for stage in plan:
        check_composed(compose(list(stage.get("overrides", [])) + stage_overrides(args.overrides)))


@pytest.mark.parametrize("command", by_program("annotate"), ids=str)
def test_annotate_commands_parse(command):
    from lit_rlhf.cli.annotate import _parser

    try:
        _parser().parse_args(list(command.args))
    except SystemExit as exit_:
        pytest.fail(f"{command}: lit-rlhf-annotate rejects these arguments (exit {exit_.code})")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_python_blocks_compile_and_their_lit_rlhf_imports_exist(page):
    for start, body in code_blocks(page.read_text(), ("python",)):
        tree = compile(body, f"{page.name}:{start}", "exec", flags=ast.PyCF_ONLY_AST)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "lit_rlhf":
                module = importlib.import_module(node.module)
                missing = [
                    a.name
                    for a in node.names
                    if not hasattr(module, a.name) and importlib.util.find_spec(f"{node.module}.{a.name}") is None
                ]
                assert not missing, f"{page.name}:{start + node.lineno - 1}: {node.module} has no {missing}"


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def prose(markdown: Path) -> str:
    """The page without its fenced code blocks: a '#' line in a bash block is no heading, a link there no link."""
    return re.sub(r"^\s*```.*?^\s*```", "", markdown.read_text(), flags=re.DOTALL | re.MULTILINE)


def anchors(markdown: Path) -> set[str]:
    return {github_anchor(m.group(1)) for m in re.finditer(r"^#{1,6}\s+(.+?)\s*$", prose(markdown), re.MULTILINE)}


def relative_links(markdown: Path) -> list[str]:
    text = re.sub(r"`[^`\n]*`", "", prose(markdown))  # inline code is not a link
    links = re.findall(r"\[[^\]]*\]\(([^)\s]+)\)", text)
    return [link for link in links if not re.match(r"^[a-z][a-z0-9+.-]*:", link)]  # http:, https:, mailto:


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_relative_links_point_to_existing_files_and_headings(page):
    links = relative_links(page)
    for link in links:
        path, _, anchor = link.partition("#")
        target = (page.parent / path).resolve() if path else page
        assert target.exists(), f"{page.name}: link {link!r} points to a missing {target}"
        if anchor:
            assert target.suffix == ".md", f"{page.name}: link {link!r} has an anchor into a non-Markdown file"
            assert anchor in anchors(target), f"{page.name}: link {link!r}: no heading gives #{anchor} in {target.name}"


def test_the_index_links_every_tutorial():
    linked = {link.partition("#")[0] for link in relative_links(TUTORIALS / "README.md")}
    assert {p.name for p in PAGES if p.name != "README.md"} <= linked
