"""Execute the documented commands in a sandbox, shrunk to a few batches of a tiny model.

Each program runs through the function its command line runs: ``lit-rlhf-train`` and ``lit-rlhf-eval`` through
their ``@hydra.main`` entry points with ``sys.argv`` set (so ``--help``, ``--cfg`` and ``-m`` sweeps are Hydra's
own), ``lit-rlhf-pipeline`` and ``lit-rlhf-annotate`` through their ``main(argv)``, ``python -m M`` through
``M.main(argv)``, python code with ``exec``. Multi-process CPU runs (``strategy=ddp trainer.devices=2``) run
as a subprocess of the real console script, because Lightning starts the other ranks by re-running the command.

What is changed, and only that:
- *shrinking*: ``SHRINK`` values appended as ``++key=value`` overrides, each only where the composed config has
  the key, the command does not set it, and the value makes the run smaller; the pipeline's planned stages get
  the same, so stages run from inside a stage (an ablation's reward-model variant) shrink too. Python snippets
  get a ``Trainer`` capped to one epoch of two batches.
- *rates*: every model here is a tiny one standing in for a pretrained one, so a reward model learns at the gym's
  rate for it (``STAND_IN_RATES``), not at a pretrained model's, unless the command sets the rate.
- *paths*: the pages' absolute example paths (``/models/...``, ``/scratch/...``, ``/tmp/...``) live under the
  sandbox; files and checkpoints they name are stand-ins made when a command first reads them (``doc_stand_ins``).
- *people*: ``lit-rlhf-annotate serve`` serves its app to simulated annotators through HTTP instead of a browser.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import hashlib
import importlib
import io
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from doc_scripts import Step
from doc_stand_ins import provide_stand_ins, sandboxed
from test_tutorials import Command, hydra_overrides

HYDRA_PROGRAMS = {"lit-rlhf-train": ("train", "lit_rlhf.cli.train"), "lit-rlhf-eval": ("eval", "lit_rlhf.cli.eval")}
MODULE_PROGRAMS = {
    "lit_rlhf.cli.train": "lit-rlhf-train",
    "lit_rlhf.cli.eval": "lit-rlhf-eval",
    "lit_rlhf.pipeline": "lit-rlhf-pipeline",
    "lit_rlhf.cli.annotate": "lit-rlhf-annotate",
}
# Programs of the pages that no test runs, and why; the lit-rlhf commands inside them are composed by
# tests/test_tutorials.py.
NOT_RUN_HERE = {
    "pip": "installs packages; these tests run inside that installation",
    "pytest": "runs this test suite, of which this test is a part",
    "ruff": "lints this repository's sources (CI runs it before the tests)",
    "torchrun": "starts 8 processes on each of 2 nodes",
    "srun": "a SLURM job step on 2 nodes",
    "source": "activates a virtual environment of the cluster",
}
# Benchmark scripts the pages run as ``python benchmarks/X.py``: through ``main(argv)``, their training runs shrunk
# like lit-rlhf-train's and in this process, with the first value of each list flag (one gym seed, one training seed).
BENCHMARK_SCRIPTS = {"benchmarks/estimators.py": ("--gym-seeds", "--seeds")}
TINY = {"hidden_size": 32, "num_layers": 1, "num_heads": 2, "intermediate_size": 64}
SHRINK = {
    "trainer.max_epochs": 1,
    "trainer.limit_train_batches": 2,
    "trainer.limit_val_batches": 1,
    "model.tiny": TINY,
    "callbacks.gold_monitor.max_prompts": 4,
    "callbacks.gold_monitor.max_new_tokens": 4,
    "sft.eval.samples_per_prompt": 1,
    "sft.eval.max_new_tokens": 4,
    "preferences.prompts.max_per_category": 4,
    "preferences.k": 3,
    "preferences.decoding.max_new_tokens": 6,
    "ppo.categories": ["harmful"],
    "ppo.prompts_per_iteration": 4,
    "ppo.prompt_filter.k": 2,
    "module.config.max_new_tokens": 4,
    "module.config.ppo_epochs": 1,
    "ppo.eval.samples_per_prompt": 1,
    "ppo.eval.max_new_tokens": 4,
    "dpo.pairs.categories": ["harmful"],
    "dpo.pairs.n": 2,
    "dpo.pairs.decoding.max_new_tokens": 4,
    "dpo.eval.samples_per_prompt": 1,
    "dpo.eval.max_new_tokens": 4,
    "eval.samples_per_prompt": 1,
    "eval.max_new_tokens": 4,
}
ALWAYS_SETTABLE = ("trainer.limit_train_batches", "trainer.limit_val_batches")  # Trainer arguments conf/ leaves out
# (stage, key) left as configured: the reward model trains all its epochs of at most two batches, because one
# that has barely trained scores every answer alike, and PPO's prompt filter then keeps no prompt.
KEPT = {("reward_model", "trainer.max_epochs")}
# Keys left as configured when the config reads the reader's own prompts: the gym category that SHRINK keeps is
# not among theirs, and a category filter that keeps no prompt stops the run.
OWN_PROMPTS = {"ppo.categories": "ppo.prompts.path", "dpo.pairs.categories": "dpo.pairs.prompts"}
# (stage, key): value raised to where the tiny stand-in model learns. The generic reward model's rate suits a
# pretrained model (1e-5); at it the tiny model barely moves in a shrunk run, scores every answer alike, and PPO's
# prompt filter then keeps no prompt (the files pipeline trains a reward model and then PPO on it).
STAND_IN_RATES = {("reward_model", "module.optimizer.lr"): 1e-3}
ERROR_SHOWN = re.compile(r"^(lit-rlhf-[a-z]+): error: ")


@dataclass
class Shell:
    """The state one script runs in: its sandbox, working directory, environment and python globals."""

    root: Path  # the sandbox; the pages' /models, /scratch, ... live under it
    shared: Path  # artifacts of the shared pipeline run: the source of stand-in checkpoints
    monkeypatch: pytest.MonkeyPatch
    written: set[Path] = field(default_factory=set)  # stage outputs written by this script
    namespace: dict = field(default_factory=dict)  # python blocks of one script share globals, like one session
    not_run: list[str] = field(default_factory=list)  # commands skipped, with why
    ran: int = 0  # commands run, shell state (cd, export, ...) left out
    tokens: dict[Path, dict[str, str]] = field(default_factory=dict)  # per annotation database: name -> token

    @property
    def cwd(self) -> Path:
        return Path.cwd()


# ----- shrinking -----------------------------------------------------------------------------------------------


def _override_value(value) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {v}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(map(str, value)) + "]"
    return str(value)


def _smaller(small, current) -> bool:
    if current is None:
        return True
    if isinstance(small, dict):
        return all(k in current and v < current[k] for k, v in small.items())
    if isinstance(small, list):
        return len(small) < len(current) and set(small) <= set(current)
    return small < current


def set_keys(overrides: list[str]) -> set[str]:
    """The config keys that ``overrides`` set, add or delete (picking a group option sets no key)."""
    import lit_rlhf.conf
    from hydra.core.override_parser.overrides_parser import OverridesParser

    groups = {p.name for p in Path(lit_rlhf.conf.__file__).parent.iterdir() if p.is_dir()}
    parsed = OverridesParser.create().parse_overrides(overrides)
    return {o.key_or_group for o in parsed if o.key_or_group not in groups}


def shrink(cfg, command_keys: set[str]) -> list[str]:
    """``++key=value`` overrides that make the run of ``cfg`` smaller without touching what the command sets."""
    from omegaconf import OmegaConf

    absent, out = object(), []
    for key, small in SHRINK.items():
        if (cfg.get("stage"), key) in KEPT:
            continue
        if key in OWN_PROMPTS and OmegaConf.select(cfg, OWN_PROMPTS[key]) is not None:
            continue
        if any(key == k or key.startswith(k + ".") or k.startswith(key + ".") for k in command_keys):
            continue
        current = OmegaConf.select(cfg, key, default=absent)
        if current is absent and key not in ALWAYS_SETTABLE:
            continue
        current = None if current is absent else current
        current = OmegaConf.to_container(current) if OmegaConf.is_config(current) else current
        if _smaller(small, current):
            out.append(f"++{key}={_override_value(small)}")
    for (stage, key), rate in STAND_IN_RATES.items():
        current = OmegaConf.select(cfg, key, default=None)
        if cfg.get("stage") == stage and key not in command_keys and current is not None and current < rate:
            out.append(f"++{key}={rate}")
    return out


def compose(config_name: str, overrides: list[str]):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_module("lit_rlhf.conf", version_base="1.3"):
        return hydra_compose(config_name, overrides=overrides)


def _stage_plan():
    """``lit_rlhf.run.stage_plan`` as shipped, also while a test has it replaced by the shrunk plans."""
    import lit_rlhf.run

    return getattr(lit_rlhf.run.stage_plan, "shipped", lit_rlhf.run.stage_plan)


@functools.cache
def shrunk_plan(plan: str, overrides: tuple[str, ...]) -> list[dict]:
    """The stages of the plan ``plan`` (``gym``, ``files`` or a path; its ``inputs.*`` from ``overrides``), each with
    the shrinking of its config under ``overrides`` added."""
    from lit_rlhf.run import stage_overrides

    stage_plan, given = _stage_plan(), stage_overrides(list(overrides))
    plan, keys = stage_plan(plan, list(overrides)), set_keys(given)
    for stage in plan:
        own = list(stage.get("overrides", []))
        stage["overrides"] = own + shrink(compose("train", own + given), keys)
    return plan


def use_shrunk_plan(shell: Shell, overrides: list[str], plan: str = "gym") -> None:
    """The stages of ``plan`` (and of the gym plan) shrunk, for the pipeline and for stages that run a planned
    stage themselves (``lit_rlhf.run.stage_config``)."""
    import lit_rlhf.pipeline
    import lit_rlhf.run

    shipped = _stage_plan()
    shrunk = {name: shrunk_plan(name, tuple(overrides if name == plan else [])) for name in {"gym", plan}}

    def stage_plan(path=None, overrides=None):
        name = "gym" if path is None else str(path)
        return copy.deepcopy(shrunk[name]) if name in shrunk else shipped(path, overrides)

    stage_plan.shipped = shipped
    for module in (lit_rlhf.pipeline, lit_rlhf.run):
        shell.monkeypatch.setattr(module, "stage_plan", stage_plan)


def missing_hardware(cfg) -> str | None:
    import torch

    trainer = cfg.get("trainer") or {}
    if int(trainer.get("num_nodes") or 1) > 1:
        return f"needs {trainer.num_nodes} nodes (trainer.num_nodes)"
    if str(trainer.get("accelerator")) in ("gpu", "cuda") and not torch.cuda.is_available():
        return f"needs a CUDA GPU (trainer.accelerator={trainer.accelerator}, trainer.devices={trainer.get('devices')})"
    return None


def fit_to_devices(cfg) -> list[str]:
    """On a machine with fewer GPUs than ``trainer.devices``, as many as it has: the run is shrunk, not skipped."""
    import torch

    wanted, trainer = cfg.trainer.get("devices"), cfg.trainer
    if (
        str(trainer.get("accelerator")) in ("gpu", "cuda")
        and isinstance(wanted, int)
        and wanted > torch.cuda.device_count()
    ):
        return [f"trainer.devices={torch.cuda.device_count()}"]
    return []


# ----- running -------------------------------------------------------------------------------------------------


class _Tee(io.StringIO):
    def __init__(self, echo):
        super().__init__()
        self.echo = echo

    def write(self, text: str) -> int:
        self.echo.write(text)
        return super().write(text)


@contextlib.contextmanager
def captured():
    """Stdout as text, still echoed (pytest shows it when a test fails)."""
    tee = _Tee(sys.stdout)
    with contextlib.redirect_stdout(tee):
        yield tee


def run_script(steps: list[Step], shell: Shell) -> None:
    for step in steps:
        if step.kind == "python":
            run_python(step.text, shell, str(step), shell.namespace)
            shell.ran += 1
        else:
            for words in step.segments():
                run_segment(words, step, shell)
        check_written(step, shell)


def run_segment(words: list[str], step: Step, shell: Shell) -> None:
    program, args = words[0], [sandboxed(w, shell.root) for w in words[1:]]
    provide_stand_ins(" ".join(words), shell.root, shell.cwd, shell.shared)
    if program in ("python", "python3"):
        if args[:1] == ["-"]:
            shell.ran += 1
            return check_printed(step, run_python(step.stdin, shell, f"{step} (stdin)", {}))
        if args[:1] == ["-c"]:
            shell.ran += 1
            return check_printed(step, run_python(args[1], shell, f"{step} (-c)", {}))
        if args[:1] and args[0] in BENCHMARK_SCRIPTS:
            return run_benchmark_script(args[0], args[1:], step, shell)
        assert args[:1] == ["-m"], f"{step}: python {args[:1]} is neither -c, -m nor -"
        program, args = MODULE_PROGRAMS.get(args[1], args[1]), args[2:]
    if program in NOT_RUN_HERE:
        shell.not_run.append(f"{program}: {NOT_RUN_HERE[program]}")
    elif program == "cd":
        shell.monkeypatch.chdir(shell.cwd / args[0])
    elif program == "mkdir":
        for name in (a for a in args if not a.startswith("-")):
            (shell.cwd / name).mkdir(parents=True, exist_ok=True)
    elif program == "export":
        for assignment in args:
            key, _, value = assignment.partition("=")
            shell.monkeypatch.setenv(key, value)
    elif program in HYDRA_PROGRAMS:
        run_hydra_program(program, args, step, shell)
    elif program == "lit-rlhf-pipeline":
        run_pipeline_program(args, shell)
    elif program == "lit-rlhf-annotate":
        run_annotate_program(args, step, shell)
    elif program.startswith("lit_rlhf."):
        if program == "lit_rlhf.evaluation.gym_seeds":  # runs the pipeline once per gym seed: shrunk like it
            use_shrunk_plan(shell, [a for a in args if "=" in a and not a.startswith("-")])
        assert importlib.import_module(program).main(args) == 0, f"{step}: python -m {program} did not return 0"
        shell.ran += 1
    else:
        raise AssertionError(f"{step}: no test knows how to run {program!r}; add it to tests/doc_runner.py")


def run_python(code: str, shell: Shell, where: str, namespace: dict) -> str:
    """Execute ``code`` with the Trainer capped to one epoch of two batches; its stdout."""
    import lightning
    import lightning.pytorch

    provide_stand_ins(code, shell.root, shell.cwd, shell.shared)
    code = sandboxed(code, shell.root)

    class ShrunkTrainer(lightning.pytorch.Trainer):
        def __init__(self, *args, **kwargs):
            kwargs.update(max_epochs=1, limit_train_batches=2, limit_val_batches=1)
            super().__init__(*args, **kwargs)

    with pytest.MonkeyPatch.context() as patch, captured() as out:
        patch.setattr(lightning, "Trainer", ShrunkTrainer)
        patch.setattr(lightning.pytorch, "Trainer", ShrunkTrainer)
        exec(compile(code, where, "exec"), namespace)  # noqa: S102 (the pages' own code is what is tested)
    return out.getvalue()


def first_values(args: list[str], flags: tuple[str, ...]) -> list[str]:
    """``args`` with only the first value after each of ``flags`` (``--seeds 0 1 2`` -> ``--seeds 0``)."""
    out, dropping = [], False
    for arg in args:
        if arg.startswith("--"):
            dropping = False
        elif dropping:
            continue
        out.append(arg)
        dropping = bool(out[-2:-1]) and out[-2] in flags
    return out


def run_benchmark_script(path: str, args: list[str], step: Step, shell: Shell) -> None:
    import lit_rlhf.evaluation.parallel_runs

    shell.monkeypatch.syspath_prepend(str(Path(__file__).parents[1] / "benchmarks"))
    script = importlib.import_module(Path(path).stem)
    shell.ran += 1
    use_shrunk_plan(shell, [])

    def train_here(runs: list, jobs: int = 1) -> int:
        for overrides, _log in runs:
            run_hydra_program("lit-rlhf-train", overrides, step, shell)
        return 0

    shell.monkeypatch.setattr(lit_rlhf.evaluation.parallel_runs, "train_in_processes", train_here)
    assert script.main(first_values(args, BENCHMARK_SCRIPTS[path])) == 0, f"{step}: {path} did not return 0"


def run_hydra_program(program: str, args: list[str], step: Step, shell: Shell) -> None:
    config_name, module = HYDRA_PROGRAMS[program]
    if {"--help", "-h", "--hydra-help", "--cfg", "-c"} & set(args):
        shell.ran += 1
        return check_information(args, call_hydra_main(module, program, args, shell))
    overrides = hydra_overrides(Command(step.page, step.line, program, tuple(args)))
    cfg = compose(config_name, overrides)
    from omegaconf import OmegaConf

    OmegaConf.to_container(cfg, resolve=True)
    if (reason := missing_hardware(cfg)) is not None:
        shell.not_run.append(f"{program}: {reason}")
        return
    shell.ran += 1
    extra = shrink(cfg, set_keys(overrides)) + fit_to_devices(cfg)
    output_dir = (shell.cwd / cfg.output_dir).resolve()
    if output_dir.exists() and output_dir not in shell.written:  # a copy of the shared run's: start afresh
        shutil.rmtree(output_dir)
    shell.written.add(output_dir)
    use_shrunk_plan(shell, [])
    expected = next((line for line in step.shown if ERROR_SHOWN.match(line)), None)
    if cfg.trainer.get("accelerator") == "cpu" and int(cfg.trainer.get("devices") or 1) > 1:
        return run_console_script(program, [*args, *extra], step, shell)
    if expected is None:
        call_hydra_main(module, program, [*args, *extra], shell)
        return
    with pytest.raises(SystemExit) as stopped:
        call_hydra_main(module, program, [*args, *extra], shell)
    assert str(stopped.value.code).splitlines()[0] == expected, f"{step}: the page shows {expected!r}"


def call_hydra_main(module: str, program: str, args: list[str], shell: Shell) -> str:
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    shell.monkeypatch.setattr(sys, "argv", [program, *args])
    with captured() as out:
        try:
            importlib.import_module(module).main()
        except SystemExit as exit_:
            if exit_.code not in (0, None):
                raise
    return out.getvalue()


def check_information(args: list[str], printed: str) -> None:
    """``--help`` prints the groups; ``--cfg`` prints YAML (resolved with ``--resolve``, of the subtree with ``-p``)."""
    assert printed.strip(), f"lit-rlhf {' '.join(args)} printed nothing"
    if "--help" in args:
        assert "experiment:" in printed and "gym_ppo" in printed, printed[:2000]
        return
    composed = yaml.safe_load(printed)
    assert isinstance(composed, dict), printed[:2000]
    if "--resolve" in args:
        assert "${" not in printed, printed[:2000]
    if "-p" in args:
        assert printed.startswith(f"# @package {args[args.index('-p') + 1]}\n"), printed[:200]


def run_console_script(program: str, args: list[str], step: Step, shell: Shell) -> None:
    """The real command in a subprocess: Lightning starts the other ranks by running the same command line."""
    script = Path(sys.executable).with_name(program)
    done = subprocess.run([str(script), *args], cwd=shell.cwd, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, f"{step}: exit {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"


def run_pipeline_program(args: list[str], shell: Shell) -> None:
    import argparse

    from lit_rlhf import pipeline

    parser = argparse.ArgumentParser()  # the arguments of lit_rlhf.pipeline.main
    parser.add_argument("overrides", nargs="*")
    parser.add_argument("--only", nargs="+")
    parser.add_argument("--force", nargs="+")
    parser.add_argument("--plan", default="gym")
    known = parser.parse_args(args)
    use_shrunk_plan(shell, known.overrides, known.plan)
    assert pipeline.main(args) == 0
    shell.ran += 1


def run_annotate_program(args: list[str], step: Step, shell: Shell) -> None:
    import uvicorn

    from lit_rlhf.cli import annotate

    db = (shell.cwd / args[args.index("--db") + 1]).resolve() if "--db" in args else None
    shell.monkeypatch.setattr(uvicorn, "run", lambda app, **_: people_label(app, shell.tokens.get(db, {})))
    with captured() as out:
        code = annotate.main(args)
    assert code == 0, f"{step}: lit-rlhf-annotate returned {code}"
    shell.ran += 1
    for name, token in re.findall(r"^(\S+)'s page: \S*#token=(\S+)$", out.getvalue(), re.MULTILINE):
        shell.tokens.setdefault(db, {})[name] = token  # what the annotator receives: the link
    check_printed(step, out.getvalue())


def people_label(app, tokens: dict[str, str]) -> None:
    """Stands in for ``uvicorn.run``: annotators on this machine take pairs from the page's API until none is left,
    each with the token from their link (or, for a database without tokens, naming themselves). Each prefers the
    response with the smaller hash, so they agree and their preferences have no cycles."""
    from fastapi.testclient import TestClient

    def rank(text: str) -> str:
        return hashlib.sha256(text.encode()).hexdigest()

    people = {name: ({"Authorization": f"Bearer {token}"}, {}) for name, token in tokens.items()} or {
        name: ({}, {"annotator": name}) for name in ("alice", "bob", "carol", "dave")
    }
    with TestClient(app, client=("127.0.0.1", 50000)) as client:
        for headers, who in people.values():
            while not (item := client.get("/api/next", params=who, headers=headers).json()).get("done"):
                assert "pair_id" in item, item
                choice = "left" if rank(item["left"]) < rank(item["right"]) else "right"
                sent = client.post(
                    "/api/labels", headers=headers, json={"pair_id": item["pair_id"], "choice": choice, **who}
                )
                assert sent.status_code == 201, sent.text


def check_printed(step: Step, printed: str) -> None:
    """Every comment line under the command, except ``->`` lines, is a line it printed (``<n>`` matches anything)."""
    lines = [line.strip() for line in printed.splitlines()]
    for shown in step.shown:
        if shown.startswith("->") or ERROR_SHOWN.match(shown):
            continue
        pattern = ".+?".join(re.escape(part) for part in re.split(r"<[^<>\s]+>", shown))
        assert any(re.fullmatch(pattern, line) for line in lines), (
            f"{step}: the page shows {shown!r}; the command printed:\n{printed[-3000:]}"
        )


def check_written(step: Step, shell: Shell) -> None:
    """The paths of a ``# -> path ...`` line under the command exist."""
    for shown in step.shown:
        if shown.startswith("->"):
            for path in re.findall(r"[\w./-]*/[\w./-]*", shown[2:]):
                assert (shell.cwd / path.rstrip(".,;:")).exists(), f"{step}: the page says it writes {path}"
