"""Every command of README.md and tutorials/*.md runs end to end, shrunk to a few batches of a tiny model.

The commands are read from the pages (``doc_scripts``), so a command added to a page is run by the next test
run, and a program no test knows how to run fails ``test_every_documented_program_is_run_or_said_why_not``.
Commands that need hardware this machine lacks (a GPU, several nodes) are composed and then skipped.
How each program runs and what is shrunk or stood in for: ``doc_runner``. tests/test_tutorials.py composes
the same commands against the configs in milliseconds.

One shrunk ``lit-rlhf-pipeline`` run, from an empty directory, makes the artifacts that the later stages'
commands read; each test works on its own copy of them.
"""

from __future__ import annotations

import shutil
from collections import Counter

import pytest
from doc_runner import (
    HYDRA_PROGRAMS,
    MODULE_PROGRAMS,
    NOT_RUN_HERE,
    Shell,
    compose,
    run_pipeline_program,
    run_script,
    set_keys,
    shrink,
)
from doc_scripts import PAGES, WALKTHROUGHS, Script, Step, is_shell_state, page_steps, scripts, shell_steps

SCRIPTS = scripts()
RUNNABLE = {
    *HYDRA_PROGRAMS,
    *MODULE_PROGRAMS,
    "lit-rlhf-pipeline",
    "lit-rlhf-annotate",
    "python",
    "python3",
    "cd",
    "mkdir",
    "export",
}


def _words(script: Script) -> set[str]:
    return {w for step in script.steps if step.kind == "shell" for s in step.segments() for w in s}


def marks(script: Script) -> list[pytest.MarkDecorator]:
    """``slow``: every documented command (each trains, and together they take minutes; the everyday tier,
    ``-m "not slow"``, leaves them to the full suite); ``gpu``: runs on a GPU (on a machine without one, the
    command is composed and the test skipped)."""
    words = _words(script)
    gpu = bool(words & {"trainer=gpu", "trainer.accelerator=gpu"})
    return [pytest.mark.slow, *([pytest.mark.gpu] if gpu else [])]


@pytest.fixture(scope="session")
def shared_artifacts(tmp_path_factory):
    """The README's main command, ``lit-rlhf-pipeline``, shrunk and run once from an empty directory."""
    root = tmp_path_factory.mktemp("pipeline")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        patch.delenv("LIT_RLHF_ARTIFACTS", raising=False)
        run_pipeline_program([], Shell(root, root / "artifacts", patch))
    assert (root / "artifacts" / "eval" / "report.md").exists()
    return root / "artifacts"


@pytest.fixture
def shell(shared_artifacts, tmp_path, monkeypatch):
    """A sandbox holding a copy of the shared run's artifacts, as the working directory."""
    shutil.copytree(shared_artifacts, tmp_path / "artifacts", ignore=shutil.ignore_patterns("hydra"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LIT_RLHF_ARTIFACTS", raising=False)
    return Shell(tmp_path, shared_artifacts, monkeypatch)


@pytest.mark.parametrize("script", [pytest.param(s, marks=marks(s), id=s.name) for s in SCRIPTS])
def test_documented_commands_run(script, shell):
    run_script(script.steps, shell)
    if shell.not_run and not shell.ran:
        pytest.skip("; ".join(shell.not_run))


def test_every_documented_program_is_run_or_said_why_not():
    steps = [step for page in PAGES for step in page_steps(page)]
    assert len([s for s in steps if "lit-rlhf-train" in s.text]) >= 70  # a broken extractor finds nothing
    unknown = [
        f"{step}: {words[0]}"
        for step in steps
        if step.kind == "shell"
        for words in step.segments()
        if words[0] not in RUNNABLE | set(NOT_RUN_HERE)
    ]
    assert not unknown, f"programs no test runs or lists in doc_runner.NOT_RUN_HERE: {unknown}"
    modules = [
        words[2]
        for step in steps
        if step.kind == "shell"
        for words in step.segments()
        if words[0] in ("python", "python3") and words[1] == "-m"
    ]
    assert all(m.startswith("lit_rlhf.") for m in modules), modules


def test_every_documented_step_is_in_exactly_one_script():
    run = Counter(str(step) for script in SCRIPTS for step in script.steps if not is_shell_state(step))
    on_pages = Counter(str(step) for page in PAGES for step in page_steps(page) if not is_shell_state(step))
    assert run == on_pages
    walkthroughs = [s for s in SCRIPTS if s.walkthrough]
    assert len(walkthroughs) == len(WALKTHROUGHS) and all(len(s.steps) >= 2 for s in walkthroughs)


PAGE_SAMPLE = """\
mkdir x && cd x
python - <<'EOF'
print("made")
EOF
lit-rlhf-train experiment=gym_sft \\
    seed=1   # a comment
# -> artifacts/sft/checkpoint

lit-rlhf-train experiment=gym_ppo
# lit-rlhf-train: error: no
"""


def test_the_extractor_keeps_heredocs_continuations_and_the_lines_shown_under_a_command():
    steps = shell_steps("page.md", 10, PAGE_SAMPLE.splitlines(), "Heading")
    assert [(s.line, s.text.split()[0], s.stdin, s.shown) for s in steps] == [
        (10, "mkdir", "", []),
        (11, "python", 'print("made")', []),
        (14, "lit-rlhf-train", "", ["-> artifacts/sft/checkpoint"]),
        (18, "lit-rlhf-train", "", ["lit-rlhf-train: error: no"]),
    ]
    assert steps[0].segments() == [["mkdir", "x"], ["cd", "x"]] and is_shell_state(steps[0])
    assert steps[2].segments() == [["lit-rlhf-train", "experiment=gym_sft", "seed=1"]]
    assert Step("p", 1, "shell", "srun a=$SLURM_NNODES b=$UNKNOWN", "h", 1).segments() == [
        ["srun", "a=2", "b=$UNKNOWN"]
    ]


def test_shrinking_only_shrinks_and_leaves_what_the_command_sets():
    overrides = ["experiment=gym_ppo", "ppo.categories=[math,writing]", "trainer.max_epochs=4", "callbacks=none"]
    extra = shrink(compose("train", overrides), set_keys(overrides))
    assert not any(e.startswith(("++ppo.categories=", "++trainer.max_epochs=", "++callbacks.")) for e in extra)
    assert {"++ppo.prompts_per_iteration=4", "++trainer.limit_train_batches=2"} <= set(extra)
    fast = ["experiment=gym_sft", "debug=fast"]  # debug=fast already runs one epoch
    assert "++trainer.max_epochs=1" not in shrink(compose("train", fast), set_keys(fast))
    assert "++model.tiny={hidden_size: 32, num_layers: 1, num_heads: 2, intermediate_size: 64}" in shrink(
        compose("train", fast), set_keys(fast)
    )
