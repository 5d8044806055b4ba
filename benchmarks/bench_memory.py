"""Peak memory (RSS) and seconds per PPO iteration by model size, lit_rlhf vs TRL's PPOTrainer, side by side.

lit_rlhf full-parameter, with LoRA, and with LoRA + gradient checkpointing; TRL full and with PEFT.

    python benchmarks/bench_memory.py                                  # every size and variant (about 1-1.5 h)
    python benchmarks/bench_memory.py --sizes 30M 120M --variants lit_full trl_full --timeout 3600

Policies are Llama-shaped, built from a config with random weights (seed 0) and a 32,000-word vocabulary
(a WordLevel tokenizer over generated words, built offline), at about 30M, 120M, 350M, 1B and 3B
parameters (``SIZES``; the exact counts are printed). The reward model is the 30M shape with a scalar head
(seed 1), the same for every size and variant, written once as a checkpoint. Everything is float32 on the
CPU, one thread per process (``--threads``).

Workload, both libraries: 8 prompts x 64 prompt tokens, 32 new tokens sampled per iteration (a random
policy over 32k words practically never samples EOS, so every response is 32 tokens), 2 PPO epochs x 2
minibatches (4 optimizer steps), AdamW (fused kernels on both sides) at one learning rate, no gradient
clipping (TRL's PPO loop has none), no reward normalisation, no reference baseline. One warm-up iteration
(``--warmup``), then one timed one. Differences in the work done: TRL keeps the sampling logits as the old
log-probs (lit_rlhf recomputes them in one forward) and computes logits at every position (lit_rlhf at the
response positions).

Variants (``VARIANTS``):

- ``lit_full``: ``PPOModule`` in a Lightning ``Trainer`` on the CPU; reference: a frozen copy of the policy;
  critic: ``ValueModel.from_policy`` (a copy of the policy's backbone under a zero head, what
  ``ppo.critic_init=policy`` builds), trained in full.
- ``lit_lora``: LoRA adapters on every linear layer but the head (``apply_memory_options``, as
  ``build_policy(..., lora=...)`` applies them; r=16, alpha=32, dropout 0); reference: the same model
  with its adapters off; critic: ``from_policy``, i.e. a copy of the frozen base carrying its own adapters.
- ``lit_lora_gc``: ``lit_lora`` with gradient checkpointing, and the reward model loaded in bf16
  (``RewardModel.load(path, dtype="bfloat16")``, what ``ppo.reward_model_dtype=bfloat16`` does).
- ``lit_lora_shared``: ``lit_lora_gc`` with the critic as a second adapter and a value head on the policy's
  own base (``SharedBaseCritic``, what ``ppo.critic_init=shared`` builds: no copy of the base).
- ``lit_grpo``: ``lit_full`` with no critic: GRPO's advantages over k = 4 answers to each of 2 prompts per
  iteration (the same 8 answers), what ``ablation=estimator_grpo`` uses.
- ``trl_full``: ``trl.experimental.ppo.PPOTrainer``; reference: ``ref_model=None``, so TRL makes its own
  copy of the policy; critic: TRL takes any ``value_model`` and has no default (its example script loads it
  from the reward model's checkpoint); here, for equal footing with ``lit_full``, a
  ``LlamaForSequenceClassification`` on a copy of the policy's backbone with a zero head.
- ``trl_peft``: the same with ``peft_config`` (the same LoRA settings) and ``ref_model=None``, so the
  reference is the policy with its adapters off. TRL applies PEFT to the policy only: the critic trains
  in full.

Every point (size x variant) runs in a fresh child process, so its peak RSS is its own: the kernel's
high-water mark of that child (``ru_maxrss`` from ``os.wait4``), which includes the interpreter and the
imported libraries (RSS after the imports: ``import GB``; after building the models, before training:
``models GB``). A child whose RSS passes ``--mem-cap-gb`` (sampled every 50 ms) is killed and reported
``OOM``, as is one whose allocation fails (``RLIMIT_DATA`` is set 2 GB above the cap as a hard backstop) or
that the kernel kills; a variant out of memory (or past ``--timeout``) at one size is skipped at the larger
ones. Seconds per iteration are CPU time (``time.process_time``) and wall time
of the timed iteration; with one thread CPU time counts the work and barely depends on other jobs.
Ratios are taken against ``trl_full`` at the same size, in the same run.

The C allocator: glibc's own by default. ``--malloc-mmap-threshold 65536`` fixes its mmap threshold in every
point of both libraries (what lit_rlhf's ``malloc_mmap_threshold`` does; a TRL user gets the same from the
environment variable ``MALLOC_MMAP_THRESHOLD_``), so freed activations leave the resident set.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from bench_ppo import KL_COEF, LR  # the rates of the speed benchmark, given to both libraries

VOCAB, REWARD_SIZE = 32_000, "30M"
# hidden size, layers, attention heads (= key/value heads), MLP width
SIZES = {
    "30M": (384, 4, 6, 1024),
    "120M": (768, 10, 12, 2048),
    "350M": (1024, 22, 16, 2816),
    "1B": (2048, 17, 32, 5632),
    "3B": (3072, 25, 24, 8192),
}
PROMPTS, PROMPT_TOKENS, NEW_TOKENS, PPO_EPOCHS, MINIBATCHES = 8, 64, 32, 2, 2
WARMUP, ITERATIONS = 1, 1
LORA = {"r": 16, "alpha": 32, "dropout": 0.0, "target_modules": "all-linear"}
VARIANTS = ("lit_full", "lit_lora", "lit_lora_gc", "lit_lora_shared", "lit_grpo", "trl_full", "trl_peft")
GRPO_SAMPLES = 4  # answers per prompt of lit_grpo: PROMPTS // GRPO_SAMPLES prompts give the same answers per iteration
PEER = "trl_full"
RESULTS = Path(__file__).parent / "results"
GB = 1e9


# ---- what both sides build: tokenizer, prompts, models ------------------------------------------------
def build_tokenizer():
    """A 32k-word WordLevel tokenizer with a chat template like the gym's: ``user : ... assistant :``."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<unk>", "<s>", "</s>"]
    words = specials + ["user", ":", "assistant"]
    words += [f"w{i}" for i in range(VOCAB - len(words))]
    core = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    core.normalizer = normalizers.Lowercase()
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    core.decoder = decoders.WordPiece(prefix="##", cleanup=False)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token="<pad>", unk_token="<unk>", bos_token="<s>", eos_token="</s>"
    )
    tokenizer.padding_side, tokenizer.model_max_length = "left", PROMPT_TOKENS + NEW_TOKENS + 1
    tokenizer.chat_template = (
        "{% for m in messages %}{{ m['role'] }} : {{ m['content'] }} {% endfor %}"
        "{% if add_generation_prompt %}assistant :{% endif %}"
    )
    return tokenizer


def prompts(tokenizer) -> list[dict]:
    """``PROMPTS`` rows of random words, each exactly ``PROMPT_TOKENS`` tokens once chat-formatted."""
    import random

    from lit_rlhf.data.formatting import encode_prompt

    rng = random.Random(0)
    rows = []
    for _ in range(PROMPTS):
        text = " ".join(f"w{rng.randrange(VOCAB - 7)}" for _ in range(PROMPT_TOKENS - 4))
        ids = encode_prompt(tokenizer, text)
        assert len(ids) == PROMPT_TOKENS, len(ids)
        rows.append({"prompt": text, "input_ids": ids})
    return rows


def llama_config(size: str, tokenizer, num_labels: int = 1):
    from transformers import LlamaConfig

    hidden, layers, heads, mlp = SIZES[size]
    return LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        intermediate_size=mlp,
        max_position_embeddings=256,
        tie_word_embeddings=False,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        num_labels=num_labels,
    )


def random_policy(size: str, tokenizer):
    """The policy of ``size``: a ``LlamaForCausalLM`` with random weights, the same on both sides (seed 0)."""
    import torch
    from transformers import LlamaForCausalLM

    torch.manual_seed(0)
    return LlamaForCausalLM(llama_config(size, tokenizer)).train()


def parameter_count(size: str) -> int:
    """Exact parameters of the policy of ``size`` (embeddings and untied LM head included)."""
    hidden, layers, _, mlp = SIZES[size]
    return 2 * VOCAB * hidden + layers * (4 * hidden * hidden + 3 * hidden * mlp + 2 * hidden) + hidden


def write_reward_model(path: Path) -> None:
    import torch
    from transformers import LlamaForSequenceClassification

    from lit_rlhf.reward.model import RewardModel

    tokenizer = build_tokenizer()
    torch.manual_seed(1)
    RewardModel(LlamaForSequenceClassification(llama_config(REWARD_SIZE, tokenizer)), tokenizer).save(path)


def _rss() -> float:
    import psutil

    return psutil.Process().memory_info().rss / GB


def _count(params) -> int:
    return sum(p.numel() for p in params)


# ---- lit_rlhf side ---------------------------------------------------------------------------------
def run_lit(variant: str, size: str, reward_path: Path, warmup: int = WARMUP) -> dict:
    import functools

    import lightning as L
    import torch
    from torch.utils.data import DataLoader

    from lit_rlhf.models.adapters import apply_memory_options
    from lit_rlhf.ppo.config import PPOConfig
    from lit_rlhf.ppo.module import PPOModule
    from lit_rlhf.ppo.stage import collate_prompts
    from lit_rlhf.ppo.value_model import SharedBaseCritic, ValueModel
    from lit_rlhf.reward.model import RewardModel

    rss_imports = _rss()
    tokenizer = build_tokenizer()
    rows = prompts(tokenizer)
    lora = LORA if variant in ("lit_lora", "lit_lora_gc", "lit_lora_shared") else None
    checkpointing = variant in ("lit_lora_gc", "lit_lora_shared")
    policy = apply_memory_options(random_policy(size, tokenizer), lora, gradient_checkpointing=checkpointing)
    bf16_reward = variant in ("lit_lora_gc", "lit_lora_shared")
    reward = RewardModel.load(reward_path, dtype="bfloat16" if bf16_reward else None)
    config = PPOConfig(
        max_new_tokens=NEW_TOKENS,
        ppo_epochs=PPO_EPOCHS,
        num_minibatches=MINIBATCHES,
        reference_baseline=False,
        max_grad_norm=None,
        kl_coef=KL_COEF,
        whiten_advantages=True,
        **(dict(advantage_estimator="grpo", samples_per_prompt=GRPO_SAMPLES) if variant == "lit_grpo" else {}),
    )
    if variant == "lit_grpo":
        critic = None
    elif variant == "lit_lora_shared":
        critic = SharedBaseCritic(policy)  # ppo.critic_init=shared
    else:
        critic = ValueModel.from_policy(policy)  # ppo.critic_init=policy
    module = PPOModule(  # reference=None: a frozen copy, or the adapted policy with its adapters off
        policy,
        tokenizer,
        reward.score,
        config,
        critic=critic,
        optimizer=functools.partial(torch.optim.AdamW, lr=LR),
        param_groups={},
    )
    rss_models = _rss()
    per_iteration = PROMPTS // config.samples_per_prompt  # prompts per iteration: PROMPTS answers either way
    batches = (rows * (warmup + ITERATIONS))[: per_iteration * (warmup + ITERATIONS)]
    clock, lengths = _lit_clock(L)
    L.Trainer(
        accelerator="cpu",
        devices=1,
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[clock],
    ).fit(module, DataLoader(batches, batch_size=per_iteration, collate_fn=collate_prompts))
    optimizer = module.optimizers().optimizer
    return {
        **clock.clock.intervals(warmup),
        "rss_imports_gb": rss_imports,
        "rss_models_gb": rss_models,
        "trainable_params": _count(p for g in optimizer.param_groups for p in g["params"]),
        "optimizer": f"{type(optimizer).__name__}(fused={optimizer.defaults.get('fused')})",
        "reward_input": "token ids" if reward.reads_tokens_of(tokenizer) else "decoded text",
        "response_tokens": lengths,
    }


def _lit_clock(L):
    from bench_ppo import IterationClock

    lengths: list[float] = []

    class Clock(L.Callback):
        def __init__(self):
            self.clock = IterationClock()

        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            if batch_idx == 0:
                self.clock.start()

        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            self.clock.tick()
            lengths.append(float(trainer.callback_metrics["rollout/response_length"]))

    return Clock(), lengths


# ---- TRL side --------------------------------------------------------------------------------------
def run_trl(variant: str, size: str, reward_path: Path, workdir: Path, warmup: int = WARMUP) -> dict:
    import copy

    import torch
    from bench_ppo import IterationClock, trl_ppo_args
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForSequenceClassification, LlamaForSequenceClassification, TrainerCallback
    from trl.experimental.ppo import PPOTrainer

    class Clock(TrainerCallback):
        def __init__(self):
            self.clock, self.eos = IterationClock(), []

        def on_train_begin(self, args, state, control, **kwargs):
            self.clock.start()

        def on_step_end(self, args, state, control, **kwargs):
            self.clock.tick()

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "val/num_eos_tokens" in logs:
                self.eos.append(float(logs["val/num_eos_tokens"]))

    rss_imports = _rss()
    tokenizer = build_tokenizer()
    rows = prompts(tokenizer)
    policy = random_policy(size, tokenizer)
    with torch.device("meta"):  # only the head is kept: the backbone is the policy's, copied
        critic = LlamaForSequenceClassification(llama_config(size, tokenizer))
    critic.model = copy.deepcopy(policy.model)
    critic.score = torch.nn.Linear(policy.config.hidden_size, 1, bias=False)
    torch.nn.init.zeros_(critic.score.weight)
    reward = AutoModelForSequenceClassification.from_pretrained(reward_path, num_labels=1)
    peft = None
    if variant == "trl_peft":
        peft = LoraConfig(
            r=LORA["r"],
            lora_alpha=LORA["alpha"],
            lora_dropout=LORA["dropout"],
            target_modules=LORA["target_modules"],
            task_type="CAUSAL_LM",
        )
    # bench_ppo's settings; bf16 and checkpointing off explicitly, as in the lit_rlhf variants but lit_lora_gc
    args = trl_ppo_args(
        workdir / f"trl_{variant}_{size}",
        PROMPTS,
        MINIBATCHES,
        PPO_EPOCHS,
        NEW_TOKENS,
        iterations=warmup + ITERATIONS,
        bf16=False,
        gradient_checkpointing=False,
    )
    trainer = PPOTrainer(
        args=args,
        processing_class=tokenizer,
        model=policy,
        ref_model=None,  # TRL's default: a copy of the policy, or with PEFT the policy with its adapters off
        reward_model=reward,
        value_model=critic,
        train_dataset=Dataset.from_dict({"input_ids": [r["input_ids"] for r in rows]}),
        peft_config=peft,
    )
    rss_models = _rss()
    clock = Clock()
    trainer.add_callback(clock)
    trainer.train()
    optimizer = getattr(trainer.optimizer, "optimizer", trainer.optimizer)
    return {
        **clock.clock.intervals(warmup),
        "rss_imports_gb": rss_imports,
        "rss_models_gb": rss_models,
        "trainable_params": _count(p for g in optimizer.param_groups for p in g["params"]),
        "optimizer": f"{type(optimizer).__name__}(fused={optimizer.defaults.get('fused')})",
        "reward_input": "token ids",
        "eos_tokens_per_iter": clock.eos,
    }


def child_main(args) -> None:
    """One point in this process: prints a JSON line ``{"status": "ok"|"oom", ...}``."""
    import torch

    from lit_rlhf.systems.host_memory import set_mmap_threshold

    set_mmap_threshold(args.malloc_mmap_threshold)  # before any model is built: it steers later allocations only
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    try:
        if args.variant.startswith("lit"):
            out = run_lit(args.variant, args.size, Path(args.reward), args.warmup)
        else:
            out = run_trl(args.variant, args.size, Path(args.reward), Path(args.workdir), args.warmup)
        out["status"] = "ok"
    except (MemoryError, RuntimeError) as err:  # torch's CPU allocator raises RuntimeError
        if not isinstance(err, MemoryError) and "allocate" not in str(err) and "memory" not in str(err).lower():
            raise
        out = {"status": "oom", "error": str(err)[-300:]}
    out.update(total_wall=time.perf_counter() - started, threads=torch.get_num_threads())
    print(json.dumps(out))


# ---- parent: one child per point, memory watched ---------------------------------------------------
def run_point(size: str, variant: str, reward: Path, workdir: Path, args) -> dict:
    """Runs one point in a fresh child; its status, peak RSS (``ru_maxrss`` of that child) and results."""
    cmd = [sys.executable, __file__, "--child", "--variant", variant, "--size", size, "--reward", str(reward)]
    cmd += ["--workdir", str(workdir), "--threads", str(args.threads), "--warmup", str(args.warmup)]
    if args.malloc_mmap_threshold is not None:
        cmd += ["--malloc-mmap-threshold", str(args.malloc_mmap_threshold)]
    threads = str(args.threads)
    env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, "TOKENIZERS_PARALLELISM": "false"}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONWARNINGS="ignore")
    return {"size": size, "variant": variant, "params": parameter_count(size), **watch_child(cmd, env, args)}


def watch_child(cmd: list[str], env: dict, args) -> dict:
    """Runs ``cmd`` (any python and script) as a child under ``args.mem_cap_gb`` and ``args.timeout``; its status,
    peak RSS (``ru_maxrss`` of that child) and the JSON it printed last."""
    import psutil

    cap = int(args.mem_cap_gb * GB)
    backstop = cap + int(2 * GB)  # allocations fail past this even if sampling missed a fast rise

    def limit():
        resource.setrlimit(resource.RLIMIT_DATA, (backstop, backstop))

    killed, sampled, started = None, 0, time.monotonic()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, preexec_fn=limit)
        try:
            watched = psutil.Process(proc.pid)
            while True:
                pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
                if pid:
                    break
                try:
                    rss = sum(p.memory_info().rss for p in [watched, *watched.children(recursive=True)])
                except psutil.NoSuchProcess:
                    rss = 0
                sampled = max(sampled, rss)
                if killed is None and rss > cap:
                    killed = "cap"
                elif killed is None and time.monotonic() - started > args.timeout:
                    killed = "timeout"
                if killed:
                    _kill_tree(watched)
                time.sleep(0.05)
        except BaseException:  # Ctrl-C: leave no child behind
            _kill_tree(psutil.Process(proc.pid))
            raise
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0), err.seek(0)
        stdout, stderr = out.read(), err.read()
    point = {"peak_rss_gb": usage.ru_maxrss * 1024 / GB}
    point.update(sampled_peak_rss_gb=sampled / GB, seconds=time.monotonic() - started)
    lines = stdout.strip().splitlines()
    if killed == "cap":
        return {**point, "status": "oom", "why": f"RSS passed the {args.mem_cap_gb:g} GB cap"}
    if killed == "timeout":
        return {**point, "status": "timeout", "why": f"still running after {args.timeout:g} s"}
    if proc.returncode == 0 and lines and lines[-1].startswith("{"):
        result = json.loads(lines[-1])
        return {**point, **result, **({"why": result["error"]} if "error" in result else {})}
    if proc.returncode == -signal.SIGKILL:
        return {**point, "status": "oom", "why": "killed by SIGKILL (the kernel's OOM killer?)"}
    if "can't allocate memory" in stderr or "MemoryError" in stderr:
        return {**point, "status": "oom", "why": stderr.strip()[-300:]}
    return {**point, "status": "error", "why": f"exit {proc.returncode}: {stderr.strip()[-1500:]}"}


def _kill_tree(process) -> None:
    import psutil

    try:
        for p in [*process.children(recursive=True), process]:
            p.kill()
    except psutil.NoSuchProcess:
        pass


def _table(points: list[dict]) -> list[str]:
    peers = {p["size"]: p for p in points if p["variant"] == PEER and p["status"] == "ok"}
    lines = [
        "| size | params | variant | peak RSS GB | import GB | models GB | CPU s/iter | wall s/iter "
        f"| RSS vs {PEER} | CPU time vs {PEER} |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for p in points:
        ok, peer = p["status"] == "ok", peers.get(p["size"])
        cells = [p["size"], f"{p['params']:,}", p["variant"]]
        if ok:
            cells += [f"{p['peak_rss_gb']:.2f}", f"{p['rss_imports_gb']:.2f}", f"{p['rss_models_gb']:.2f}"]
            cells += [f"{p['cpu_sec_per_iter']:.2f}", f"{p['sec_per_iter']:.2f}"]
            cells += [f"{p['peak_rss_gb'] / peer['peak_rss_gb']:.2f}x" if peer else "—"]
            cells += [f"{p['cpu_sec_per_iter'] / peer['cpu_sec_per_iter']:.2f}x" if peer else "—"]
        else:
            cells += [p["status"].upper()] + ["—"] * 6
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _largest(points: list[dict], variants) -> list[str]:
    lines = []
    for variant in variants:
        done = [p["size"] for p in points if p["variant"] == variant and p["status"] == "ok"]
        failed = [f"{p['size']} {p['status']}" for p in points if p["variant"] == variant and p["status"] != "ok"]
        largest = max(done, key=list(SIZES).index) if done else "none"
        lines.append(f"- {variant}: {largest}" + (f" (then {', '.join(failed)})" if failed else ""))
    return lines


def _has_trl_ppo() -> bool:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return int(version("trl").split(".")[0]) < 1  # trl.experimental.ppo: 0.2x
    except PackageNotFoundError:
        return False


def _environment(args) -> dict:
    from importlib.metadata import PackageNotFoundError, version

    import psutil

    def installed(lib: str) -> str | None:
        try:
            return version(lib)
        except PackageNotFoundError:
            return None

    libs = ("torch", "transformers", "peft", "lightning", "trl")
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "versions": {lib: installed(lib) for lib in libs},
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "ram_gb": round(psutil.virtual_memory().total / GB, 1),
        "threads_per_point": args.threads,
        "mem_cap_gb": args.mem_cap_gb,
        "malloc_mmap_threshold": args.malloc_mmap_threshold,
    }


def _header(args, sizes: list[str], command: str) -> dict:
    reward = (
        f"the {REWARD_SIZE} shape with a 1-output score head instead of the LM head, "
        f"{parameter_count(REWARD_SIZE) - (VOCAB - 1) * SIZES[REWARD_SIZE][0]:,} parameters"
    )
    workload = dict(prompts=PROMPTS, prompt_tokens=PROMPT_TOKENS, new_tokens=NEW_TOKENS, ppo_epochs=PPO_EPOCHS)
    workload.update(minibatches=MINIBATCHES, warmup_iterations=args.warmup, timed_iterations=ITERATIONS, vocab=VOCAB)
    shapes = {s: dict(zip(("hidden", "layers", "heads", "mlp"), SIZES[s]), params=parameter_count(s)) for s in sizes}
    return {
        "command": command,
        **_environment(args),
        "workload": {**workload, "reward_model": reward, "lora": LORA},
        "shapes": shapes,
        "points": [],
    }


def sweep(args, sizes: list[str], variants: list[str], report: dict, out: Path) -> None:
    """Every point, smallest size first; a variant out of memory (or time) at one size skips the larger ones."""
    given_up: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        reward = Path(tmp) / "reward"
        # in a child of its own: this process stays small (no torch) while the points run
        subprocess.run([sys.executable, __file__, "--write-reward", str(reward)], check=True, capture_output=True)
        for size in sizes:
            for variant in variants:
                if variant in given_up:
                    point = {"size": size, "variant": variant, "params": parameter_count(size), "status": "skipped"}
                    point["why"] = given_up[variant]
                else:
                    point = run_point(size, variant, reward, Path(tmp), args)
                    if point["status"] in ("oom", "timeout"):
                        given_up[variant] = f"{point['status']} at {size}"
                report["points"].append(point)
                out.write_text(json.dumps(report, indent=2) + "\n")  # after every point: a long sweep keeps its part
                shown = f"{point['peak_rss_gb']:.2f} GB peak RSS" if "peak_rss_gb" in point else ""
                print(f"{size:>5s} {variant:12s} {point['status']:8s} {shown} {point.get('why', '')[:200]}", flush=True)


def add_sweep_arguments(parser, variants, results_name: str, step: str) -> None:
    """The options of a memory benchmark's sweep: which points, their limits, the allocator, the warm-up."""
    parser.add_argument("--sizes", nargs="+", choices=list(SIZES), default=list(SIZES))
    parser.add_argument("--variants", nargs="+", choices=list(variants), default=list(variants))
    parser.add_argument("--timeout", type=float, default=4 * 3600, help="seconds per point (default 4 h)")
    parser.add_argument("--mem-cap-gb", type=float, default=22.0, help="RSS above which a point is OOM")
    parser.add_argument("--threads", type=int, default=1, help="torch / OpenMP threads per point")
    parser.add_argument("--out", help=f"JSON file (default benchmarks/results/{results_name}_<sizes>.json)")
    parser.add_argument(
        "--malloc-mmap-threshold",
        type=int,
        help="bytes: glibc's mmap threshold fixed in every point, both libraries (lit_rlhf's malloc_mmap_threshold)",
    )
    parser.add_argument("--warmup", type=int, default=WARMUP, help=f"untimed {step}s before the timed one")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_sweep_arguments(parser, VARIANTS, "bench_memory", "iteration")
    for hidden in ("--variant", "--size", "--reward", "--workdir", "--write-reward"):
        parser.add_argument(hidden, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child_main(args)
    if args.write_reward:
        return write_reward_model(Path(args.write_reward))
    check_threshold(parser, args.malloc_mmap_threshold)
    sizes = sorted(args.sizes, key=list(SIZES).index)
    variants = [v for v in VARIANTS if v in args.variants]
    if any(v.startswith("trl") for v in variants) and not _has_trl_ppo():
        parser.error("the trl_* variants need TRL's PPOTrainer, which TRL 1.x removed: pip install trl==0.29.1")
    command = "python benchmarks/bench_memory.py " + shlex.join(sys.argv[1:])
    out = Path(args.out) if args.out else RESULTS / f"bench_memory_{'_'.join(sizes)}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    report = _header(args, sizes, command)
    print(f"command: {command}\nreward model: {report['workload']['reward_model']}\n", flush=True)
    sweep(args, sizes, variants, report, out)
    finish_report(report, _table(report["points"]), out, variants, args, command)


def finish_report(report: dict, table: list[str], out: Path, variants, args, command: str) -> None:
    """The table into the results file and on screen, then the largest size each variant completed."""
    report["table_markdown"] = "\n".join(table)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print("\n" + "\n".join(table))
    largest = "\n".join(_largest(report["points"], variants))
    print(f"\nlargest size completed within {args.mem_cap_gb:g} GB RSS:\n{largest}")
    print(f"\nresults: {out}\ncommand: {command}")


def check_threshold(parser, threshold: int | None) -> None:
    """A bad ``--malloc-mmap-threshold`` stops the sweep before any point runs, not in every child."""
    from lit_rlhf.data.errors import ConfigError
    from lit_rlhf.systems.host_memory import check_mmap_threshold

    try:
        check_mmap_threshold(threshold)
    except ConfigError as err:
        parser.error(f"--malloc-mmap-threshold: {err}")


if __name__ == "__main__":
    main()
