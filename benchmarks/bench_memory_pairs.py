"""Peak memory (RSS) and CPU seconds per optimizer step by model size, for DPO and for reward-model training,
lit_rlhf against TRL 1.16's DPOTrainer and RewardTrainer, side by side.

The preference-pair companion of ``bench_memory.py`` (PPO): the same sizes, tokenizer, LoRA settings and
child-process measurement.

    python benchmarks/bench_memory_pairs.py                               # every size and variant
    python benchmarks/bench_memory_pairs.py --sizes 30M 120M --variants lit_dpo_full trl_dpo_full

Models: Llama shapes of about 30M, 120M, 350M, 1B and 3B parameters (``bench_memory.SIZES``), random weights
(seed 0), a 32,000-word vocabulary (``bench_memory.build_tokenizer``, built offline), float32 on the CPU, one
thread per process (``--threads``). DPO trains the ``LlamaForCausalLM``; the reward model is a
``LlamaForSequenceClassification`` of the same shape (the LM head replaced by a 1-output score head; its
parameter count is shown). Both libraries build their model in memory from the same config and seed (a checksum
of the first weights of every tensor, reported by both, shows they are equal); no weights are read from disk,
so the peak holds no loader's transient copies.

Workload, both libraries: 8 preference pairs per optimizer step, each a 64-token prompt (60 random words in the
chat template) with a 32-token chosen and a 32-token rejected answer (31 random words and EOS; seed 0), so every
sequence is 96 tokens and no batch holds padding; the chosen and rejected answers of a step in one forward of 16
sequences. AdamW with fused kernels on both sides (lit_rlhf ``fused_optimizer="auto"``, TRL
``optim="adamw_torch_fused"``; each side reports its optimizer) at ``bench_ppo.LR``, constant, no weight decay,
gradients clipped at 1.0 (``bench_dpo.CLIP``). One warm-up step (``--warmup``) then one timed step.

- DPO: sigmoid loss, β = 0.1, summed answer log-probs. The reference log-probs are computed before training on
  both sides, so no step runs a reference forward. lit_rlhf does what its DPO stage does: a frozen reference
  (``frozen_reference``: a deep copy of the policy, or with LoRA the policy with its adapters off) scores every
  pair once (``DPODataModule.cache_reference_logps``, 8 pairs per forward), then the copy is dropped; TRL
  (``precompute_ref_log_probs=True``, ``ref_model=None``) scores them with the policy itself before its first
  step (with PEFT, adapters off), 8 pairs per forward, and keeps no reference model. Resident during training,
  on both sides: the policy, its gradients and AdamW's two moments (of the trainable parameters only under
  LoRA), the step's activations, and 2 floats per pair (TRL keeps them in an Arrow table).
- Reward model: Bradley–Terry loss, -log σ(r_chosen - r_rejected), no score prior (lit_rlhf ``prior_coef=0``,
  TRL ``center_rewards_coefficient=None``). lit_rlhf: ``RewardModelModule`` over a ``PreferenceDataModule``,
  the model through ``apply_memory_options(..., task="seq_cls")`` as ``build_reward_model`` does; TRL:
  ``RewardTrainer``. Under LoRA both train the score head in full beside the adapters (PEFT's ``SEQ_CLS``
  task).

Both sides get the pairs as data they tokenize themselves: lit_rlhf the raw prompt and answers, TRL the
chat-formatted prompt text and the answers after a space (TRL appends EOS). Each TRL process checks that its
token ids equal the workload's for every pair and side (``tokenized_ids_checked``); both report the shapes of
every batch they trained on, the optimizer steps taken, the trainable parameters and the weight checksum.

What is not the same, and is part of what is measured: both DPO forwards project every position through the LM
head (16 x 96 x 32,000 logits), lit_rlhf's at once, TRL's through its fused LM head (``add_fused_lm_head``), which
off Triton devices scores every position in chunks of 32,768 positions (one chunk here) and also computes each
position's entropy, mean logit and top-1 hit for its logs; TRL also hashes every weight once before training (to
name its reference cache). lit_rlhf's full-parameter DPO holds a second copy of the weights while the reference
log-probs are computed (before training; TRL needs none). TRL's reward model computes the score at every position
and reads the last one; lit_rlhf's scores the last position only. Lightning against ``transformers.Trainer``
around the step.

Variants (``VARIANTS``): ``lit_dpo_full``, ``lit_dpo_lora`` (LoRA on every linear layer but the head,
``apply_memory_options`` with ``bench_memory.LORA``: r=16, alpha=32, dropout 0), ``lit_dpo_lora_gc`` (and gradient
checkpointing), ``trl_dpo_full``, ``trl_dpo_lora`` (``peft_config``: the same LoRA settings); ``lit_rm_full``,
``lit_rm_lora``, ``lit_rm_lora_gc``, ``trl_rm_full``, ``trl_rm_lora``. TRL runs with ``gradient_checkpointing=False``
and ``bf16=False`` set explicitly (its defaults are on), so TRL has no counterpart of the ``_gc`` variants.

Every point (size x variant) runs in a fresh child process, watched by ``bench_memory.watch_child``: peak RSS is
the kernel's high-water mark of that child (``ru_maxrss``), interpreter and libraries included (RSS after the
imports: ``import GB``; after building the model and computing the reference log-probs, before training:
``models GB``). A child past ``--mem-cap-gb`` (sampled every 50 ms) is killed and reported ``OOM``, as is one whose
allocation fails; a variant out of memory (or past ``--timeout``) at one size is skipped at the larger ones. CPU
seconds (``time.process_time``) and wall seconds are those of the timed step, from its start to the end of its
optimizer step. Ratios are taken against the TRL full-parameter variant of the same kind (``trl_dpo_full``,
``trl_rm_full``) at the same size, in the same run.

TRL runs in its own virtualenv (``bench_grpo.TRL_VENV``, made on first use by ``bench_ppo.ensure_venv`` with
``PINS``: torch, trl 1.16.0 and peft, and lit_rlhf's transformers; a venv there without peft is rebuilt), as
this script in child mode; its children import no lit_rlhf. The C allocator: glibc's own by default;
``--malloc-mmap-threshold N`` fixes its mmap threshold at N bytes in every child of both libraries before any
model is built, so freed activations leave the resident set: in lit_rlhf children with
``set_mmap_threshold`` (lit_rlhf's ``malloc_mmap_threshold``, after the imports), in TRL children through the
environment variable ``MALLOC_MMAP_THRESHOLD_``, which glibc reads at start-up. Results, written after every point:
``benchmarks/results/bench_memory_pairs_<sizes>.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_dpo import BETA, CLIP
from bench_grpo import TRL_PINS, TRL_VENV, describe_optimizer
from bench_memory import (
    LORA,
    SIZES,
    VOCAB,
    _count,
    _environment,
    _rss,
    add_sweep_arguments,
    build_tokenizer,
    check_threshold,
    finish_report,
    llama_config,
    parameter_count,
    random_policy,
    watch_child,
)
from bench_ppo import LR, IterationClock, ensure_venv

PAIRS, PROMPT_TOKENS, ANSWER_TOKENS = 8, 64, 32
SEQUENCE_TOKENS = PROMPT_TOKENS + ANSWER_TOKENS
TIMED_STEPS = 1  # after --warmup untimed ones
PINS = [*TRL_PINS, "peft==0.21.2"]
TRL_MODULES = "trl.trainer.dpo_trainer, trl.trainer.reward_trainer, peft"  # what the venv must import
# name: (kind, library, LoRA, gradient checkpointing)
VARIANTS = {
    "lit_dpo_full": ("dpo", "lit", False, False),
    "lit_dpo_lora": ("dpo", "lit", True, False),
    "lit_dpo_lora_gc": ("dpo", "lit", True, True),
    "trl_dpo_full": ("dpo", "trl", False, False),
    "trl_dpo_lora": ("dpo", "trl", True, False),
    "lit_rm_full": ("rm", "lit", False, False),
    "lit_rm_lora": ("rm", "lit", True, False),
    "lit_rm_lora_gc": ("rm", "lit", True, True),
    "trl_rm_full": ("rm", "trl", False, False),
    "trl_rm_lora": ("rm", "trl", True, False),
}
PEERS = {"dpo": "trl_dpo_full", "rm": "trl_rm_full"}
RESULTS = Path(__file__).parent / "results"


def model_parameters(kind: str, size: str) -> int:
    """The policy's parameters for DPO; the reward model's (a 1-output score head instead of the LM head)."""
    return parameter_count(size) - ((VOCAB - 1) * SIZES[size][0] if kind == "rm" else 0)


# ---- the workload, written once by the parent (in a child of its own) --------------------------------
def write_workload(workdir: Path, sizes: list[str], pairs: int) -> None:
    """The tokenizer and each size's config as HF files, and ``pairs`` pairs as text and lit_rlhf's token ids."""
    import random

    from lit_rlhf.data.formatting import prompt_text
    from lit_rlhf.dpo.data import DPODataset

    tokenizer = build_tokenizer()
    tokenizer.save_pretrained(workdir / "tokenizer")
    for size in sizes:
        llama_config(size, tokenizer).save_pretrained(workdir / "config" / size)
    rng = random.Random(0)

    def words(n: int) -> str:
        return " ".join(f"w{rng.randrange(VOCAB - 7)}" for _ in range(n))

    # the chat template adds 4 tokens to a prompt, the answer's EOS 1
    rows = [
        {"prompt": words(PROMPT_TOKENS - 4), "chosen": words(ANSWER_TOKENS - 1), "rejected": words(ANSWER_TOKENS - 1)}
        for _ in range(pairs)
    ]
    for row, item in zip(rows, DPODataset(rows, tokenizer, SEQUENCE_TOKENS).items):
        lengths = (len(item["chosen_ids"]), len(item["rejected_ids"]), item["chosen_prompt_len"])
        if lengths != (SEQUENCE_TOKENS, SEQUENCE_TOKENS, PROMPT_TOKENS) or item["rejected_prompt_len"] != PROMPT_TOKENS:
            raise ValueError(f"a pair does not tokenize to {PROMPT_TOKENS} + {ANSWER_TOKENS} tokens: {item}")
        row.update(prompt_text=prompt_text(tokenizer, row["prompt"]), **item)
    (workdir / "pairs.json").write_text(json.dumps(rows))


def read_pairs(workdir: Path) -> list[dict]:
    return json.loads((workdir / "pairs.json").read_text())


def weights_checksum(model) -> float:
    """The sum of the first 64 values of every tensor: equal on both sides when the weights are (no full copy)."""
    return sum(float(p.detach().reshape(-1)[:64].double().sum()) for p in model.parameters())


# ---- lit_rlhf side ---------------------------------------------------------------------------------
def fit_lit(module, datamodule, warmup: int) -> dict:
    """``warmup`` + ``TIMED_STEPS`` optimizer steps in a Lightning ``Trainer``; the timed step's seconds."""
    import lightning as L

    shapes: list[list[int]] = []

    class Clock(L.Callback):
        def __init__(self):
            self.clock = IterationClock()

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            shapes.append(list(batch["input_ids"].shape))
            if batch_idx == 0:
                self.clock.start()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            self.clock.tick()

    clock = Clock()
    trainer = L.Trainer(
        accelerator="cpu",
        devices=1,
        max_steps=warmup + TIMED_STEPS,
        gradient_clip_val=CLIP,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        callbacks=[clock],
    )
    trainer.fit(module, datamodule=datamodule)
    optimizer = module.optimizers().optimizer
    return {
        **clock.clock.intervals(warmup),
        "optimizer_steps": trainer.global_step,
        "optimizer": describe_optimizer(optimizer),
        "trainable_params": _count(p for g in optimizer.param_groups for p in g["params"]),
        "batch_shapes": shapes,
    }


def run_lit_dpo(variant: str, size: str, workdir: Path, warmup: int) -> dict:
    import functools
    import gc

    import lightning as L
    import torch

    from lit_rlhf.dpo.config import DPOConfig
    from lit_rlhf.dpo.data import DPODataModule
    from lit_rlhf.dpo.module import DPOModule
    from lit_rlhf.models.adapters import apply_memory_options, frozen_reference

    _, _, lora, checkpointing = VARIANTS[variant]
    rss_imports = _imported_rss(lora)
    L.seed_everything(0, verbose=False)
    tokenizer, rows = build_tokenizer(), read_pairs(workdir)
    policy = random_policy(size, tokenizer)
    checksum = weights_checksum(policy)
    policy = apply_memory_options(policy, LORA if lora else None, gradient_checkpointing=checkpointing)
    datamodule = DPODataModule(tokenizer, rows, batch_size=PAIRS, max_length=SEQUENCE_TOKENS, seed=0)
    reference = frozen_reference(policy)  # what the DPO stage does: a frozen copy, or the base with adapters off
    cached = datamodule.cache_reference_logps(reference)
    del reference  # the cache replaces it during training, as in the stage
    gc.collect()
    check_lit_items(datamodule.train_set.items, rows, datamodule.truncated)
    module = DPOModule(
        policy, tokenizer, DPOConfig(beta=BETA), optimizer=functools.partial(torch.optim.AdamW, lr=LR), weight_decay=0
    )
    rss_models = _rss()
    return {
        **fit_lit(module, datamodule, warmup),
        "rss_imports_gb": rss_imports,
        "rss_models_gb": rss_models,
        "weights_checksum": checksum,
        "reference_logps_computed": cached,
    }


def run_lit_rm(variant: str, size: str, workdir: Path, warmup: int) -> dict:
    import functools

    import lightning as L
    import torch
    from transformers import LlamaForSequenceClassification

    from lit_rlhf.models.adapters import apply_memory_options
    from lit_rlhf.reward.data import PreferenceDataModule
    from lit_rlhf.reward.module import RewardModelModule

    _, _, lora, checkpointing = VARIANTS[variant]
    rss_imports = _imported_rss(lora)
    L.seed_everything(0, verbose=False)
    tokenizer, rows = build_tokenizer(), read_pairs(workdir)
    torch.manual_seed(0)
    model = LlamaForSequenceClassification(llama_config(size, tokenizer)).train()
    checksum = weights_checksum(model)
    # build_reward_model's last step, on a model it would load from a checkpoint
    model = apply_memory_options(model, LORA if lora else None, checkpointing, task="seq_cls", seed=0)
    datamodule = PreferenceDataModule(tokenizer, rows, batch_size=PAIRS, max_length=SEQUENCE_TOKENS, seed=0)
    datamodule.setup("fit")
    check_lit_items(datamodule.train_set.items, rows, datamodule.truncated)
    module = RewardModelModule(
        model,
        tokenizer,
        optimizer=functools.partial(torch.optim.AdamW, lr=LR),
        prior_coef=0.0,  # Bradley-Terry alone, as TRL's default
        max_length=SEQUENCE_TOKENS,
    )
    rss_models = _rss()
    return {
        **fit_lit(module, datamodule, warmup),
        "rss_imports_gb": rss_imports,
        "rss_models_gb": rss_models,
        "weights_checksum": checksum,
    }


def _imported_rss(lora: bool) -> float:
    """RSS once the libraries are imported; with LoRA, peft among them (TRL imports it whenever installed)."""
    if lora:
        import peft  # noqa: F401

    return _rss()


def check_lit_items(items: list[dict], rows: list[dict], truncated: dict) -> None:
    """lit_rlhf tokenized every pair to the workload's ids, and cut nothing."""
    for item, row in zip(items, rows, strict=True):
        if item["chosen_ids"] != row["chosen_ids"] or item["rejected_ids"] != row["rejected_ids"]:
            raise ValueError(f"lit_rlhf's ids differ from the workload's for prompt {row['prompt'][:60]!r}")
    if any(any(counts.values()) for counts in truncated.values()):
        raise ValueError(f"lit_rlhf truncated pairs: {truncated}")


# ---- TRL side (runs inside the TRL virtualenv: no lit_rlhf imports here) -----------------------------
def fit_trl(trainer, warmup: int) -> dict:
    """``trainer.train()`` with a clock from the first step's start to each optimizer step's end."""
    from transformers import TrainerCallback

    shapes: list[list[int]] = []

    class Clock(TrainerCallback):
        def __init__(self):
            self.clock = IterationClock()

        def on_step_begin(self, args, state, control, **kwargs):
            if state.global_step == 0:
                self.clock.start()

        def on_step_end(self, args, state, control, **kwargs):
            self.clock.tick()

    collate = trainer.data_collator

    def recorded(examples):
        batch = collate(examples)
        shapes.append(list(batch["input_ids"].shape))
        return batch

    trainer.data_collator = recorded  # read when train() builds its loader
    clock = Clock()
    trainer.add_callback(clock)
    trainer.train()
    optimizer = getattr(trainer.optimizer, "optimizer", trainer.optimizer)
    return {
        **clock.clock.intervals(warmup),
        "optimizer_steps": trainer.state.global_step,
        "optimizer": describe_optimizer(optimizer),
        "trainable_params": _count(p for g in optimizer.param_groups for p in g["params"]),
        "batch_shapes": shapes,
    }


def trl_common(output_dir: Path, warmup: int) -> dict:
    """The ``transformers.TrainingArguments`` both TRL configs get."""
    return dict(
        output_dir=str(output_dir),
        max_steps=warmup + TIMED_STEPS,
        per_device_train_batch_size=PAIRS,
        gradient_accumulation_steps=1,
        learning_rate=LR,
        lr_scheduler_type="constant",
        warmup_steps=0,
        weight_decay=0.0,
        max_grad_norm=CLIP,
        max_length=SEQUENCE_TOKENS,
        gradient_checkpointing=False,  # TRL's default is on
        bf16=False,  # TRL's default is bf16 autocast; lit_rlhf runs float32
        use_cpu=True,
        optim="adamw_torch_fused",
        seed=0,
        report_to="none",
        save_strategy="no",
        logging_steps=1,
        disable_tqdm=True,
        dataloader_num_workers=0,
    )


def trl_inputs(workdir: Path, size: str, model_class, lora: bool, task: str):
    """``(model, tokenizer, texts, peft_config, checksum)``: the model from the config and seed 0 (as lit_rlhf's)."""
    import torch
    from transformers import AutoConfig, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(workdir / "tokenizer")
    torch.manual_seed(0)
    model = model_class(AutoConfig.from_pretrained(workdir / "config" / size)).train()
    pairs = read_pairs(workdir)
    texts = {
        "prompt": [p["prompt_text"] for p in pairs],
        "chosen": [" " + p["chosen"] for p in pairs],
        "rejected": [" " + p["rejected"] for p in pairs],
    }
    peft = None
    if lora:
        from peft import LoraConfig

        peft = LoraConfig(
            r=LORA["r"],
            lora_alpha=LORA["alpha"],
            lora_dropout=LORA["dropout"],
            target_modules=LORA["target_modules"],
            task_type=task,
        )
    return model, tokenizer, texts, peft, weights_checksum(model)


def run_trl_dpo(variant: str, size: str, workdir: Path, warmup: int) -> dict:
    from datasets import Dataset
    from transformers import LlamaForCausalLM
    from trl import DPOConfig, DPOTrainer  # trl imports its trainers lazily: these load them

    rss_imports = _rss()
    lora = VARIANTS[variant][2]
    model, tokenizer, texts, peft, checksum = trl_inputs(workdir, size, LlamaForCausalLM, lora, "CAUSAL_LM")
    args = DPOConfig(
        **trl_common(workdir / f"trl_{variant}_{size}", warmup),
        beta=BETA,
        loss_type=["sigmoid"],
        precompute_ref_log_probs=True,
    )
    trainer = DPOTrainer(
        model=model, args=args, train_dataset=Dataset.from_dict(texts), processing_class=tokenizer, peft_config=peft
    )
    for pair, row in zip(read_pairs(workdir), trainer.train_dataset, strict=True):
        for side in ("chosen", "rejected"):
            if row["prompt_ids"] + row[f"{side}_ids"] != pair[f"{side}_ids"]:
                raise ValueError(f"TRL's {side} ids differ from the workload's for prompt {pair['prompt'][:60]!r}")
    rss_models = _rss()
    return {
        **fit_trl(trainer, warmup),
        "rss_imports_gb": rss_imports,
        "rss_models_gb": rss_models,
        "weights_checksum": checksum,
        "tokenized_ids_checked": True,
        "reference_model_resident": trainer.ref_model is not None,
        "versions": trl_versions(),
    }


def run_trl_rm(variant: str, size: str, workdir: Path, warmup: int) -> dict:
    from datasets import Dataset
    from transformers import LlamaForSequenceClassification
    from trl import RewardConfig, RewardTrainer  # trl imports its trainers lazily: these load them

    rss_imports = _rss()
    model, tokenizer, texts, peft, checksum = trl_inputs(
        workdir, size, LlamaForSequenceClassification, VARIANTS[variant][2], "SEQ_CLS"
    )
    args = RewardConfig(
        **trl_common(workdir / f"trl_{variant}_{size}", warmup), center_rewards_coefficient=None, eval_strategy="no"
    )
    trainer = RewardTrainer(
        model=model, args=args, train_dataset=Dataset.from_dict(texts), processing_class=tokenizer, peft_config=peft
    )
    for pair, row in zip(read_pairs(workdir), trainer.train_dataset, strict=True):
        if row["chosen_ids"] != pair["chosen_ids"] or row["rejected_ids"] != pair["rejected_ids"]:
            raise ValueError(f"TRL's ids differ from the workload's for prompt {pair['prompt'][:60]!r}")
    rss_models = _rss()
    return {
        **fit_trl(trainer, warmup),
        "rss_imports_gb": rss_imports,
        "rss_models_gb": rss_models,
        "weights_checksum": checksum,
        "tokenized_ids_checked": True,
        "versions": trl_versions(),
    }


def trl_versions() -> dict:
    from importlib.metadata import version

    return {lib: version(lib) for lib in ("trl", "transformers", "torch", "peft", "accelerate", "datasets")}


RUNS = {
    ("dpo", "lit"): run_lit_dpo,
    ("rm", "lit"): run_lit_rm,
    ("dpo", "trl"): run_trl_dpo,
    ("rm", "trl"): run_trl_rm,
}


def child_main(args) -> None:
    """One point in this process: prints a JSON line ``{"status": "ok"|"oom", ...}``."""
    import torch

    kind, library, _, _ = VARIANTS[args.variant]
    threshold = os.environ.get("MALLOC_MMAP_THRESHOLD_")  # TRL children: glibc read it at start-up
    if library == "lit":
        from lit_rlhf.systems.host_memory import set_mmap_threshold

        # before any model is built: it steers later allocations only
        threshold = args.malloc_mmap_threshold if set_mmap_threshold(args.malloc_mmap_threshold) else None
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    try:
        out = RUNS[kind, library](args.variant, args.size, Path(args.workdir), args.warmup)
        out["status"] = "ok"
    except (MemoryError, RuntimeError) as err:  # torch's CPU allocator raises RuntimeError
        if not isinstance(err, MemoryError) and "allocate" not in str(err) and "memory" not in str(err).lower():
            raise
        out = {"status": "oom", "error": str(err)[-300:]}
    out.update(total_wall=time.perf_counter() - started, threads=torch.get_num_threads())
    out["malloc_mmap_threshold"] = None if threshold is None else int(threshold)
    print(json.dumps(out))


# ---- parent: one child per point, memory watched ---------------------------------------------------
def run_point(size: str, variant: str, workdir: Path, args, trl_python: Path) -> dict:
    """One point in a fresh child (TRL's in the TRL venv) under ``bench_memory.watch_child``."""
    kind, library, _, _ = VARIANTS[variant]
    python = trl_python if library == "trl" else sys.executable
    cmd = [str(python), __file__, "--child", "--variant", variant, "--size", size, "--workdir", str(workdir)]
    cmd += ["--threads", str(args.threads), "--warmup", str(args.warmup)]
    threads = str(args.threads)
    env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, "TOKENIZERS_PARALLELISM": "false"}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1", PYTHONWARNINGS="ignore")
    env.pop("MALLOC_MMAP_THRESHOLD_", None)  # set below for TRL only: lit_rlhf children set it themselves
    if args.malloc_mmap_threshold is not None:
        if library == "lit":
            cmd += ["--malloc-mmap-threshold", str(args.malloc_mmap_threshold)]
        else:
            env["MALLOC_MMAP_THRESHOLD_"] = str(args.malloc_mmap_threshold)
    point = {"size": size, "variant": variant, "kind": kind, "params": model_parameters(kind, size)}
    return {**point, **watch_child(cmd, env, args)}


def sweep(args, sizes: list[str], variants: list[str], report: dict, out: Path, trl: tuple) -> None:
    """Every point, smallest size first; a variant out of memory (or time) at one size skips the larger ones."""
    trl_python, trl_note = trl
    given_up = {v: f"TRL not available: {trl_note}" for v in variants if VARIANTS[v][1] == "trl" and not trl_python}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        steps = args.warmup + TIMED_STEPS
        writer = [sys.executable, __file__, "--write-workload", tmp, "--sizes", *sizes, "--warmup", str(args.warmup)]
        done = subprocess.run(writer, capture_output=True, text=True, check=False)  # keeps this process small
        if done.returncode != 0:
            raise SystemExit(f"writing the workload failed:\n{done.stderr[-3000:]}")
        report["workload"]["pairs_written"] = PAIRS * steps
        for size in sizes:
            for variant in variants:
                kind = VARIANTS[variant][0]
                if variant in given_up:
                    point = {"size": size, "variant": variant, "kind": kind, "params": model_parameters(kind, size)}
                    point.update(status="skipped", why=given_up[variant])
                else:
                    point = run_point(size, variant, workdir, args, trl_python)
                    if point["status"] in ("oom", "timeout"):
                        given_up[variant] = f"{point['status']} at {size}"
                report["points"].append(point)
                out.write_text(json.dumps(report, indent=2) + "\n")  # after every point: a long sweep keeps its part
                shown = f"{point['peak_rss_gb']:.2f} GB peak RSS" if "peak_rss_gb" in point else ""
                print(f"{size:>5s} {variant:16s} {point['status']:8s} {shown} {point.get('why', '')[:200]}", flush=True)


def _table(points: list[dict]) -> list[str]:
    ok = {(p["size"], p["variant"]): p for p in points if p["status"] == "ok"}
    lines = [
        "| size | params | variant | peak RSS GB | import GB | models GB | CPU s/step | wall s/step "
        "| RSS vs TRL full | CPU time vs TRL full |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for p in points:
        peer = ok.get((p["size"], PEERS[p["kind"]]))
        cells = [p["size"], f"{p['params']:,}", p["variant"]]
        if p["status"] == "ok":
            cells += [f"{p['peak_rss_gb']:.2f}", f"{p['rss_imports_gb']:.2f}", f"{p['rss_models_gb']:.2f}"]
            cells += [f"{p['cpu_sec_per_iter']:.2f}", f"{p['sec_per_iter']:.2f}"]
            cells += [f"{p['peak_rss_gb'] / peer['peak_rss_gb']:.2f}x" if peer else "—"]
            cells += [f"{p['cpu_sec_per_iter'] / peer['cpu_sec_per_iter']:.2f}x" if peer else "—"]
        else:
            cells += [p["status"].upper()] + ["—"] * 6
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _header(args, sizes: list[str], command: str, trl_note: str) -> dict:
    workload = dict(pairs_per_step=PAIRS, prompt_tokens=PROMPT_TOKENS, answer_tokens=ANSWER_TOKENS, vocab=VOCAB)
    workload.update(beta=BETA, learning_rate=LR, grad_clip=CLIP, warmup_steps=args.warmup, timed_steps=TIMED_STEPS)
    shapes = {
        s: dict(zip(("hidden", "layers", "heads", "mlp"), SIZES[s]), params=parameter_count(s))
        | {"reward_model_params": model_parameters("rm", s)}
        for s in sizes
    }
    return {
        "command": command,
        **_environment(args),
        "trl_venv": str(TRL_VENV),
        "trl_pins": PINS,
        "trl_note": trl_note,
        "workload": {**workload, "lora": LORA},
        "shapes": shapes,
        "points": [],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_sweep_arguments(parser, VARIANTS, "bench_memory_pairs", "optimizer step")
    for hidden in ("--variant", "--size", "--workdir", "--write-workload"):
        parser.add_argument(hidden, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child_main(args)
    if args.write_workload:
        return write_workload(Path(args.write_workload), args.sizes, PAIRS * (args.warmup + TIMED_STEPS))
    check_threshold(parser, args.malloc_mmap_threshold)
    sizes = sorted(args.sizes, key=list(SIZES).index)
    variants = [v for v in VARIANTS if v in args.variants]
    trl_python, trl_note = None, "no trl_* variant asked for"
    if any(VARIANTS[v][1] == "trl" for v in variants):
        trl_python, trl_note = ensure_venv(TRL_VENV, PINS, TRL_MODULES)
    command = "python benchmarks/bench_memory_pairs.py " + shlex.join(sys.argv[1:])
    out = Path(args.out) if args.out else RESULTS / f"bench_memory_pairs_{'_'.join(sizes)}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    report = _header(args, sizes, command, trl_note)
    print(f"command: {command}\nTRL: {TRL_VENV} ({trl_note})\n", flush=True)
    sweep(args, sizes, variants, report, out, (trl_python, trl_note))
    trl_points = [p for p in report["points"] if p["status"] == "ok" and "versions" in p]
    report["trl_versions"] = trl_points[0]["versions"] if trl_points else None  # "versions": lit_rlhf's environment
    finish_report(report, _table(report["points"]), out, variants, args, command)


if __name__ == "__main__":
    main()
