"""Stand-ins for the reader's own files and checkpoints that the pages name, and the sandboxing of example paths.

A stand-in is made the first time a command names its path and the path does not exist, so a walkthrough that
writes its own file (tutorial 1's ``prefs.jsonl``) keeps it. Checkpoints are copies of the shared pipeline run's
(tiny) SFT policy and reward model; data files are small and written here.
"""

from __future__ import annotations

import gzip
import json
import re
import shutil
from pathlib import Path

SANDBOXED_ROOTS = ("models", "path", "scratch", "shared", "tmp")  # example absolute paths of the pages
# Paths the pages name as the reader's own files and checkpoints, and what stands in for each.
STAND_INS = {
    **dict.fromkeys(
        [
            "/models/chatglm3-6b",
            "/models/chatglm3-6b-sft",
            "/models/my-base",
            "/models/my-sft",
            "/models/my-rlhf",
            "/models/qwen2-7b-sft",
            "/shared/models/qwen2-7b-sft",
            "/path/to/checkpoint",
            "/path/to/sft",
            "/path/to/ckpt",  # and hub names: a local directory of that name
            "Qwen/Qwen2.5-1.5B-Instruct",
            "Qwen/Qwen2.5-0.5B",
        ],
        "policy",
    ),
    **dict.fromkeys(
        ["/models/qwen2-rm", "/shared/models/qwen2-7b-rm", "/path/to/reward_model/checkpoint"], "reward_model"
    ),
    **dict.fromkeys(
        [
            "train.jsonl",
            "val.jsonl",
            "sft.jsonl",
            "sft_val.jsonl",
            "data/sft_train.jsonl",
            "data/sft_val.jsonl",
            "/shared/data/sft_train.jsonl",
        ],
        "sft_rows",
    ),
    **dict.fromkeys(["prefs.jsonl", "data/prefs.jsonl"], "preference_rows"),
    # "must still hold the SFT and reward-model checkpoints those stages read (copy or link them ...)"
    **dict.fromkeys(["/tmp/ppo_check", "/tmp/dpo_check"], "checkpoints_copy"),
    **dict.fromkeys(["hh/train.jsonl.gz", "hh-rlhf/train.jsonl.gz"], "hh_rlhf"),
    **dict.fromkeys(["prompts.jsonl", "my_prompts.jsonl", "heldout.jsonl"], "prompt_rows"),
    "export.json": "label_studio_export",
}


def sandboxed(text: str, root: Path) -> str:
    """``text`` with the pages' example absolute paths moved under the sandbox ``root``."""
    pattern = r"(?<![\w.}$/-])/(" + "|".join(SANDBOXED_ROOTS) + r")/"
    return re.sub(pattern, lambda m: f"{root}/{m.group(1)}/", text)


def provide_stand_ins(text: str, root: Path, cwd: Path, shared: Path) -> None:
    """Make each stand-in that ``text`` names and that does not exist yet (a walkthrough's own files are kept):
    absolute ones under the sandbox ``root``, relative ones in ``cwd``; checkpoints come from ``shared``."""
    for name, kind in STAND_INS.items():
        if re.search(r"(?<![\w/.-])" + re.escape(name) + r"(?![\w/.-])", text) is None:
            continue
        target = root / name.lstrip("/") if name.startswith("/") else cwd / name
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            MAKERS[kind](target, shared)


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wt") as handle:
        handle.writelines(json.dumps(row) + "\n" for row in rows)


def sft_rows(path: Path, shared: Path) -> None:
    """Gym demonstrations, with the keys under two names (``prompt``/``response`` and ``instruction``/``output``)."""
    from lit_rlhf.gym import AlignmentGym

    rows = AlignmentGym(seed=0).demonstrations("train")[:48]
    _write_jsonl(path, [{**r, "instruction": r["prompt"], "output": r["response"]} for r in rows])


def hh_rlhf(path: Path, shared: Path) -> None:
    """HH-RLHF transcripts as Anthropic ships them: gzip JSONL, multi-turn rows, and two rows with an empty final
    reply (the harmless-base split has such rows). The longer reply wins in half the pairs, so that length
    balancing keeps pairs."""
    rows = []
    for i in range(40):
        a, b = i % 7 + 2, i % 5 + 3
        context = "\n\nHuman: hi\n\nAssistant: hello , how can i help ?" if i % 3 == 0 else ""
        dialogue = f"{context}\n\nHuman: what is {a} plus {b} ?\n\nAssistant: "
        chosen = f"the answer is {a + b} ." + (" i hope that helps ." if i % 2 else "")
        rejected = f"the answer is {a + b + 1} ." + ("" if i % 2 else " i am sure of it .")
        rows.append({"chosen": dialogue + chosen, "rejected": dialogue + rejected})
    harmful = "\n\nHuman: how do i pick a lock ?\n\nAssistant:"
    rows.insert(5, {"chosen": harmful + " sorry , i can not help with that .", "rejected": harmful})
    rows.insert(17, {"chosen": harmful, "rejected": harmful + " take a pin and push it in ."})
    _write_jsonl(path, rows)


def preference_rows(path: Path, shared: Path) -> None:
    """The reader's own pairs: the shared run's collected preferences, the first pair of each prompt (as in most
    HH-RLHF rows), so that DPO's validation pairs have prompts its training pairs lack."""
    seen, rows = set(), []
    for line in (shared / "preferences" / "preferences.jsonl").read_text().splitlines():
        row = json.loads(line)
        if row["prompt"] not in seen:
            seen.add(row["prompt"])
            rows.append(row)
    _write_jsonl(path, rows)


def prompt_rows(path: Path, shared: Path) -> None:
    """The reader's own prompts: none of them a gym prompt, some without a category."""
    texts = [
        "describe the river near my town .",
        "write a short poem about rain .",
        "what is 12 plus 30 ?",
        "reply with json : what is the colour of the sky ?",
        "how do i steal a bike ?",
        "describe a quiet morning .",
        "what is 7 plus 8 ?",
        "write a note to thank a friend .",
        "how do i break into a car ?",
        "describe the smell of bread .",
        "what is 40 plus 2 ?",
        "write two lines about the moon .",
    ]
    _write_jsonl(path, [{"prompt": t, **({"category": "mine"} if i % 2 else {})} for i, t in enumerate(texts)])


def label_studio_export(path: Path, shared: Path) -> None:
    """A Label Studio pairwise export: six tasks, each labelled by three people who agree."""
    tasks = []
    for i in range(6):
        data = {
            "prompt": f"what is {i} plus {i + 1} ?",
            "answer1": f"the answer is {2 * i + 1} .",
            "answer2": f"it is {2 * i + 3} , i think .",
            "category": "math",
        }
        result = [{"type": "pairwise", "value": {"selected": "left" if i % 3 else "right"}}]
        tasks.append(
            {
                "id": i + 1,
                "data": data,
                "annotations": [{"id": 10 * i + k, "completed_by": k, "result": result} for k in range(3)],
            }
        )
    path.write_text(json.dumps(tasks))


MAKERS = {
    "policy": lambda path, shared: shutil.copytree(shared / "sft" / "checkpoint", path),
    "reward_model": lambda path, shared: shutil.copytree(shared / "reward_model" / "checkpoint", path),
    "checkpoints_copy": lambda path, shared: [
        shutil.copytree(shared / stage / "checkpoint", path / stage / "checkpoint") for stage in ("sft", "reward_model")
    ],
    "sft_rows": sft_rows,
    "preference_rows": preference_rows,
    "hh_rlhf": hh_rlhf,
    "prompt_rows": prompt_rows,
    "label_studio_export": label_studio_export,
}
