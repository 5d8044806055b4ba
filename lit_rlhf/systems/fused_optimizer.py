"""AdamW applied inside backward: each parameter is stepped as soon as its gradient is complete.

``Tensor.register_post_accumulate_grad_hook`` fires once a leaf's ``.grad`` holds the full
gradient of the current backward. The hook runs that parameter's own AdamW step and sets its
gradient to None, so at most a few gradients are alive at any moment instead of all of them:
gradient memory drops from the size of the model to the size of its largest tensors.

``FusedBackwardAdamW`` is a ``torch.optim.Optimizer``, so LR schedulers and Lightning treat
it like any optimizer: schedulers edit ``param_groups`` (copied into every per-parameter
optimizer before its step), ``step(closure)`` runs the closure (whose backward performs the
updates), and ``state_dict``/``load_state_dict`` hold every per-parameter state exactly.

What it cannot do, because no moment exists where all gradients are alive at once: global
gradient-norm clipping, gradient accumulation over several backwards, and AMP gradient
scaling (fp16). See ``check_fused_backward_compatible``.
"""

from __future__ import annotations

import torch

from lit_rlhf.systems.adamw import ADAMW_KEYS, adamw_kernel_options, adamw_param_groups

ACCUMULATION_ERROR = (
    "FusedBackwardAdamW: a parameter received a second gradient before step() was called. The optimizer "
    "step runs inside backward, so gradient accumulation over several backward passes is not supported: "
    "sum the losses into one backward, call step() after every backward, or use build_adamw instead."
)


class FusedBackwardAdamW(torch.optim.Optimizer):
    """One AdamW per parameter, stepped from a post-accumulate-grad hook during backward.

    Usage mirrors a standard optimizer: ``loss.backward(); opt.step(); opt.zero_grad()``. The
    parameters are already updated when ``backward`` returns; ``step`` only closes the update
    (so a second backward before it is caught as accumulation). ``remove_hooks`` turns the
    hooks off; ``step`` then updates from accumulated gradients like a standard optimizer.
    """

    def __init__(
        self,
        params_or_groups,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        fused: bool | str = "auto",
    ):
        groups = adamw_param_groups(params_or_groups, weight_decay)
        super().__init__(groups, {"lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay})
        self._inner: list[tuple[torch.Tensor, dict, torch.optim.AdamW]] = []
        for group in self.param_groups:
            for param in group["params"]:
                inner = torch.optim.AdamW(
                    [param], **{k: group[k] for k in ADAMW_KEYS}, **adamw_kernel_options([param], fused)
                )
                self._inner.append((param, group, inner))
        self._updated: set[int] = set()
        self._handles = [p.register_post_accumulate_grad_hook(self._make_hook(g, o)) for p, g, o in self._inner]

    @property
    def hooks_active(self) -> bool:
        return bool(self._handles)

    def _make_hook(self, group: dict, inner: torch.optim.AdamW):
        def step_in_backward(param: torch.Tensor) -> None:
            if id(param) in self._updated:
                raise RuntimeError(ACCUMULATION_ERROR)
            self._step_one(group, inner)
            self._updated.add(id(param))

        return step_in_backward

    @staticmethod
    def _step_one(group: dict, inner: torch.optim.AdamW) -> None:
        # Copy the (possibly rescheduled) hyperparameters of the owning group, then free the gradient.
        inner.param_groups[0].update({k: group[k] for k in ADAMW_KEYS})
        inner.step()
        inner.zero_grad(set_to_none=True)

    def remove_hooks(self) -> None:
        """Stop updating inside backward; ``step`` then works from accumulated gradients."""
        for handle in self._handles:
            handle.remove()
        self._handles = []

    @torch.no_grad()
    def step(self, closure=None):
        """Run ``closure`` (forward + backward, which applies the updates) and close this update."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        if not self.hooks_active:
            for param, group, inner in self._inner:
                if param.grad is not None:
                    self._step_one(group, inner)
        self._updated.clear()
        return loss

    def state_dict(self) -> dict:
        """Group hyperparameters (params as indices) and each parameter's AdamW state, in order."""
        groups, index = [], 0
        for group in self.param_groups:
            n = len(group["params"])
            options = {k: v for k, v in group.items() if k != "params"}
            groups.append({**options, "params": list(range(index, index + n))})
            index += n
        return {"param_groups": groups, "per_param": [inner.state_dict() for _, _, inner in self._inner]}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore a ``state_dict`` from an optimizer built over the same parameters in the same order."""
        groups, per_param = state_dict["param_groups"], state_dict["per_param"]
        sizes = [len(g["params"]) for g in self.param_groups]
        if [len(g["params"]) for g in groups] != sizes or len(per_param) != len(self._inner):
            raise ValueError(
                f"state_dict holds groups of sizes {[len(g['params']) for g in groups]}, "
                f"this optimizer has {sizes}: it was built over different parameters"
            )
        for group, saved in zip(self.param_groups, groups):
            group.update({k: v for k, v in saved.items() if k != "params"})
        for (_, _, inner), saved in zip(self._inner, per_param):
            inner.load_state_dict(saved)


def check_fused_backward_compatible(
    gradient_clip_val: float | None = None,
    accumulate_grad_batches: int = 1,
    precision: str | None = None,
    strategy: str | None = None,
) -> None:
    """Raise ``ValueError`` for training settings that in-backward updates cannot honour.

    - global gradient-norm (or value) clipping needs every gradient before any step;
    - gradient accumulation needs gradients to survive several backwards;
    - fp16 AMP needs the GradScaler to unscale and check all gradients for inf before stepping;
    - DDP and FSDP1 (Lightning's ``ddp``/``fsdp`` strategies) synchronise gradients after the
      hook has already fired, so ranks would step on unsynchronised gradients. FSDP2
      (``fully_shard``, Lightning's ``ModelParallelStrategy``) runs the hooks on the sharded
      parameters after reduce-scatter.
    """
    problems = []
    if gradient_clip_val:
        problems.append(f"gradient clipping (gradient_clip_val={gradient_clip_val}) needs all gradients at once")
    if accumulate_grad_batches != 1:
        problems.append(
            f"gradient accumulation (accumulate_grad_batches={accumulate_grad_batches}) "
            "needs gradients to survive several backward passes"
        )
    if precision is not None and str(precision).startswith("16"):
        problems.append(f"precision={precision} uses a GradScaler that must see all gradients before a step")
    if strategy is not None and (str(strategy).startswith("ddp") or str(strategy) == "fsdp"):
        problems.append(f"strategy={strategy} synchronises gradients after the hooks have stepped")
    if problems:
        raise ValueError(
            "FusedBackwardAdamW cannot be used with: "
            + "; ".join(problems)
            + ". Use build_adamw (a standard optimizer) for these settings."
        )
