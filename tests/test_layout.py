"""The package layout: one folder per algorithm, unique file names, no import cycles, stages below the CLI."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[1] / "lit_rlhf"
# What only entry points may import: a stage that called back into them would run stages from inside a stage.
ENTRY_POINTS = ("lit_rlhf.cli", "lit_rlhf.pipeline", "lit_rlhf.run")


def module_names() -> dict[str, Path]:
    names = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[1:2] == ("conf",) or "__pycache__" in parts:
            continue
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return names


def imports_of(path: Path, name: str, modules: dict[str, Path]) -> set[str]:
    """The lit_rlhf modules ``path`` imports anywhere in it (function-level imports included);
    ``from a.b import c`` counts as an import of ``a.b.c`` when that is a module."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else [])
                )
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base)
    return {m for m in found if m in modules and m != name}


def import_graph() -> dict[str, set[str]]:
    modules = module_names()
    return {name: imports_of(path, name, modules) for name, path in modules.items()}


def test_every_module_imports():
    for name in module_names():
        importlib.import_module(name)


# Each algorithm folder has the same roles under the same names; any other name says what it holds, once.
ROLES = {"__init__.py", "module.py", "stage.py", "config.py", "data.py"}


def test_file_names_are_unique():
    seen: dict[str, list[str]] = {}
    for name, path in module_names().items():
        if path.name not in ROLES:
            seen.setdefault(path.name, []).append(name)
    assert {k: v for k, v in seen.items() if len(v) > 1} == {}


def test_no_import_cycles():
    graph = import_graph()
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(v):  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert cycles == []


@pytest.mark.parametrize("stage", ["sft", "preferences", "reward_model", "ppo", "dpo", "eval"])
def test_stages_never_reach_the_entry_points(stage):
    from lit_rlhf.stages import STAGES

    graph, seen, todo = import_graph(), set(), [STAGES[stage]]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo += graph[name]
    assert sorted(m for m in seen if m.startswith(ENTRY_POINTS)) == []


@pytest.mark.parametrize("algorithm", ["sft", "reward", "ppo", "dpo"])
def test_each_algorithm_has_its_module_and_stage_in_one_folder(algorithm):
    folder = PACKAGE / algorithm
    assert (folder / "module.py").exists() and (folder / "stage.py").exists()


def test_the_public_api_imports_from_the_package():
    import lit_rlhf

    for name in lit_rlhf.__all__:
        assert getattr(lit_rlhf, name) is not None, name
    from lit_rlhf import DPOModule, PPOConfig, PPOModule, RewardModel, RewardModelModule, SFTModule  # noqa: F401

    with pytest.raises(AttributeError, match="no attribute 'NoSuchThing'"):
        lit_rlhf.NoSuchThing  # noqa: B018


def test_importing_the_package_builds_nothing():
    import subprocess
    import sys

    code = "import sys, lit_rlhf; print(sorted(m for m in sys.modules if m.startswith(('torch', 'lightning'))))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"  # names are imported on first use
