"""Peak memory and step time: AdamW stepped inside backward vs a standard AdamW step, side by side.

    python benchmarks/bench_fused_optimizer.py                 # tiny embedded Llama (~1M parameters)
    python benchmarks/bench_fused_optimizer.py --config bigger # ~34M parameters

Each variant runs in its own fresh process (so peak RSS belongs to that variant alone) on the
same model, data and seed. What is measured:

- on CUDA: ``torch.cuda.max_memory_allocated`` over the timed steps (everything the caching
  allocator handed out: weights, optimizer state, activations, gradients);
- on CPU, two numbers, because torch's CPU allocator has no peak counter:
  * peak live gradient bytes: at every post-accumulate-grad event of one extra backward, the
    bytes of all ``.grad`` tensors alive at that moment, maximum over the backward. This is the
    quantity the in-backward step changes, measured rather than assumed;
  * peak process RSS (``resource.getrusage``): includes the interpreter, torch, weights,
    optimizer state, activations and allocator slack, so its ratio is diluted but honest.
- step time: median wall time of forward + backward + optimizer step over the timed steps,
  one CPU thread (or CUDA-synchronised); the variants run alternately ``--repeats`` times and
  the fastest median of each is shown.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

import torch

CONFIGS = {
    "tiny": {},  # the embedded default of lit_rlhf.models.build_policy
    "bigger": {"hidden_size": 512, "num_layers": 8, "num_heads": 8, "intermediate_size": 2048},
}
VARIANTS = ("standard", "fused_backward")


class GradObserver:
    """Records the bytes of all gradients alive at each post-accumulate-grad event while ``active``.

    Its hooks are registered before the optimizer's, so at each event the parameter's own
    gradient is still alive (the in-backward step frees it right after).
    """

    def __init__(self, params):
        self.params, self.active, self.peak = list(params), False, 0
        self.handles = [p.register_post_accumulate_grad_hook(self.observe) for p in self.params]

    def observe(self, _=None):
        if self.active:
            live = sum(p.grad.numel() * p.grad.element_size() for p in self.params if p.grad is not None)
            self.peak = max(self.peak, live)


def _build(config: str, variant: str, device: torch.device, lr: float = 1e-4):
    from lit_rlhf.models import build_policy
    from lit_rlhf.systems.adamw import build_adamw
    from lit_rlhf.systems.fused_optimizer import FusedBackwardAdamW

    model, tokenizer = build_policy(tiny=CONFIGS[config], seed=0)
    model.to(device).train()
    observer = GradObserver(p for p in model.parameters() if p.requires_grad)
    make = FusedBackwardAdamW if variant == "fused_backward" else build_adamw
    return model, make(model.named_parameters(), lr=lr, weight_decay=0.1), observer, len(tokenizer)


def _train_step(model, opt, ids):
    opt.zero_grad(set_to_none=True)
    model(input_ids=ids, labels=ids).loss.backward()
    opt.step()


def _peak_live_grad_bytes(model, opt, observer: GradObserver, ids) -> int:
    """Peak bytes of live gradients over one backward (and just after it, before the step)."""
    observer.active = True
    opt.zero_grad(set_to_none=True)
    model(input_ids=ids, labels=ids).loss.backward()
    observer.observe()  # after backward: the standard path holds every gradient here
    opt.step()
    for handle in observer.handles:  # the timed steps run without the observer
        handle.remove()
    return observer.peak


def run_variant(args) -> dict:
    torch.set_num_threads(1)
    device = torch.device("cuda" if torch.cuda.is_available() and not args.cpu else "cpu")
    model, opt, observer, vocab = _build(args.config, args.variant, device)
    ids = torch.randint(4, vocab, (args.batch, args.seq), generator=torch.Generator().manual_seed(0)).to(device)
    for _ in range(args.warmup):
        _train_step(model, opt, ids)
    grad_peak = _peak_live_grad_bytes(model, opt, observer, ids)
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    times, faults_before = [], resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(args.steps):
        start = time.perf_counter()
        _train_step(model, opt, ids)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return {
        "variant": args.variant,
        "device": str(device),
        "params": sum(p.numel() for p in model.parameters()),
        "param_bytes": sum(p.numel() * p.element_size() for p in model.parameters()),
        "peak_grad_bytes": grad_peak,
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,  # Linux reports KiB
        "cuda_peak_bytes": torch.cuda.max_memory_allocated() if device.type == "cuda" else None,
        "step_ms": 1000 * statistics.median(times),
        "page_faults_per_step": (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults_before) / args.steps,
    }


def _mib(n) -> str:
    return "n/a" if n is None else f"{n / 2**20:9.1f}"


def _summarise(runs: list[dict]) -> dict:
    """Memory from the first run (it is deterministic up to allocator noise); the fastest run's median time.

    The minimum over repeats is the least disturbed estimate on a machine shared with other work.
    """
    return {**runs[0], "step_ms": min(r["step_ms"] for r in runs)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", choices=sorted(CONFIGS), default="tiny")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seq", type=int, default=64)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3, help="fresh processes per variant, alternated")
    parser.add_argument("--cpu", action="store_true", help="stay on CPU even when CUDA is available")
    parser.add_argument("--variant", choices=VARIANTS, help=argparse.SUPPRESS)  # child-process mode
    args = parser.parse_args()
    if args.variant:
        print(json.dumps(run_variant(args)))
        return
    runs = {variant: [] for variant in VARIANTS}
    for _ in range(args.repeats):  # alternate the variants so background load hits both alike
        for variant in VARIANTS:
            cmd = [sys.executable, __file__, "--variant", variant] + sys.argv[1:]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            runs[variant].append(json.loads(out.strip().splitlines()[-1]))
    std, fused = (_summarise(runs[variant]) for variant in VARIANTS)
    print(
        f"config={args.config} params={std['params']:,} ({_mib(std['param_bytes']).strip()} MiB) "
        f"device={std['device']} batch={args.batch} seq={args.seq} timed_steps={args.steps} repeats={args.repeats}"
    )
    rows = [
        ("peak live gradients (MiB)", "peak_grad_bytes", _mib),
        ("peak process RSS (MiB)", "peak_rss_bytes", _mib),
        ("CUDA max allocated (MiB)", "cuda_peak_bytes", _mib),
        ("median step time (ms)", "step_ms", lambda v: f"{v:9.1f}"),
        ("minor page faults / step", "page_faults_per_step", lambda v: f"{v:9.0f}"),
    ]
    print(f"{'metric':28s} {'standard':>10s} {'fused_bwd':>10s} {'fused/std':>10s}")
    for label, key, fmt in rows:
        a, b = std[key], fused[key]
        ratio = "n/a" if a in (None, 0) or b is None else f"{b / a:10.3f}"
        print(f"{label:28s} {fmt(a):>10s} {fmt(b):>10s} {ratio:>10s}")


if __name__ == "__main__":
    main()
