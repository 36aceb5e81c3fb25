"""Optimisers: "spec" = Adam/RMSprop written out op by op; "native*" = torch.optim's own.

Spec updates follow torch/optim/adam.py ``_single_tensor_adam`` and rmsprop.py ``_single_tensor_rmsprop``
(torch 2.13, the path torch.optim takes for CPU tensors) op for op, so on CPU they equal torch.optim exactly:
  Adam:    m.lerp_(g, 1 - b1)                         (m + w (g - m), or g - (g - m)(1 - w) when w >= 0.5)
           v.mul_(b2).addcmul_(g, g, value=1 - b2)
           scalars in float64 as Python does them:  step_size = lr / (1 - b1^t), bc2_sqrt = (1 - b2^t)^0.5
           denom = sqrt(v) / bc2_sqrt + eps;  w.addcdiv_(m, denom, value=-step_size)
  RMSprop: v.mul_(alpha).addcmul_(g, g, value=1 - alpha);  w.addcdiv_(g, sqrt(v) + eps, value=-lr)
(On CUDA torch.optim defaults to its foreach kernels, which may differ from these in the last bit.)

Op by op they run as torch._foreach_* calls, one per op over all of a network's tensors: on CPU the very same
kernels per tensor (bit for bit, tested against torch.optim), with one Python dispatch per op instead of one per
op and tensor (measured on parabola's four tensors: about 40% less time per update).

``capturable=True`` (the compiled whole step): the same math with the step count kept as a tensor, so that a new
step is not a new graph for torch.compile (nor a CUDA graph replay with stale scalars): the bias corrections are
computed from it in float64 inside the graph and cast to the weights' dtype, and ``addcdiv_``'s Python scalar
becomes a tensor factor, ``w + (-step_size * m) / denom``, the order addcdiv's CPU kernel computes in. Its
results differ from the op-by-op ones in the last bits only (common/tolerances.py MODE_ATOL, tested).

Every optimiser here has the same small surface: ``apply(grads)``, ``t`` (updates applied, an int),
``moments()`` -> {"m": [...], "v": [...]} (Adam) or {"v": [...]} (RMSprop), in torch's layout, and
``set_state(t, moments)``.
"""
from __future__ import annotations

import torch
from torch.optim.optimizer import _get_scalar_dtype

from common.spec import Optimizer


class StepCount:
    """Updates applied: a Python int op by op; a tensor under torch.compile (``capturable``).

    The tensor has shape (1,), not (): torch.compile (2.13) drops in-place updates of a 0-d float64 CPU tensor
    (measured: the count stayed 0 and Adam divided by 1 - beta1^0 = 0)."""

    def __init__(self, like: torch.Tensor, capturable: bool):
        self.tensor = torch.zeros(1, dtype=torch.float64, device=like.device) if capturable else None
        self.count = 0

    def increment(self):
        """The new count: an int, or the (1,) float64 tensor."""
        if self.tensor is None:
            self.count += 1
            return self.count
        self.tensor.add_(1)
        return self.tensor

    @property
    def value(self) -> int:
        return self.count if self.tensor is None else int(self.tensor.item())

    def set(self, t: int) -> None:
        self.count = int(t)
        if self.tensor is not None:
            self.tensor.fill_(int(t))


class SpecOptimizer:
    """What both spec optimisers share: parameters, the step count, state in and out."""

    def __init__(self, opt: Optimizer, params, capturable: bool = False):
        self.params = list(params)
        self.lr, self.eps = opt.lr, opt.eps
        self.steps = StepCount(self.params[0], capturable)

    @property
    def t(self) -> int:
        return self.steps.value

    def set_state(self, t: int, moments: dict) -> None:
        _copy_moments(self.moments(), moments)
        self.steps.set(t)


class SpecAdam(SpecOptimizer):
    def __init__(self, opt: Optimizer, params, capturable: bool = False):
        super().__init__(opt, params, capturable)
        self.beta1, self.beta2 = opt.beta1, opt.beta2
        self.keras_eps = opt.eps_form == "keras"  # eps / sqrt(1 - b2^t): common/spec.py Optimizer
        self.m = [torch.zeros_like(p) for p in self.params]
        self.v = [torch.zeros_like(p) for p in self.params]

    @torch.no_grad()
    def apply(self, grads) -> None:
        t = self.steps.increment()
        if isinstance(t, int):  # op by op: Python doubles, exactly as torch.optim
            step = float(t)
            step_size = self.lr / (1 - self.beta1 ** step)
            bias_correction2_sqrt = (1 - self.beta2 ** step) ** 0.5
            grads = list(grads)
            torch._foreach_lerp_(self.m, grads, 1 - self.beta1)
            torch._foreach_mul_(self.v, self.beta2)
            torch._foreach_addcmul_(self.v, grads, grads, value=1 - self.beta2)
            denom = torch._foreach_sqrt(self.v)
            torch._foreach_div_(denom, bias_correction2_sqrt)
            torch._foreach_add_(denom, self.eps / bias_correction2_sqrt if self.keras_eps else self.eps)
            torch._foreach_addcdiv_(self.params, self.m, denom, value=-step_size)
            return
        # capturable: the same doubles, as tensors of the graph; Inductor fuses each tensor's update
        neg_step_size = (-self.lr / (1 - self.beta1 ** t)).to(self.params[0].dtype)
        bias_correction2_sqrt = (1 - self.beta2 ** t).sqrt()
        eps = (self.eps / bias_correction2_sqrt).to(self.params[0].dtype) if self.keras_eps else self.eps
        bias_correction2_sqrt = bias_correction2_sqrt.to(self.params[0].dtype)
        for p, g, m, v in zip(self.params, grads, self.m, self.v):
            m.lerp_(g, 1 - self.beta1)
            v.mul_(self.beta2).addcmul_(g, g, value=1 - self.beta2)
            denom = (v.sqrt() / bias_correction2_sqrt).add_(eps)
            p.add_(neg_step_size * m / denom)

    def moments(self) -> dict:
        return {"m": self.m, "v": self.v}


class SpecRMSprop(SpecOptimizer):
    def __init__(self, opt: Optimizer, params, capturable: bool = False):
        super().__init__(opt, params, capturable)
        self.alpha = opt.alpha
        self.v = [torch.zeros_like(p) for p in self.params]

    @torch.no_grad()
    def apply(self, grads) -> None:
        self.steps.increment()  # RMSprop's update does not depend on t: the count is state only
        grads = list(grads)
        torch._foreach_mul_(self.v, self.alpha)
        torch._foreach_addcmul_(self.v, grads, grads, value=1 - self.alpha)
        denom = torch._foreach_sqrt(self.v)
        torch._foreach_add_(denom, self.eps)
        torch._foreach_addcdiv_(self.params, grads, denom, value=-self.lr)

    def moments(self) -> dict:
        return {"v": self.v}


class NativeOptimizer:
    """torch.optim.Adam / RMSprop with the spec's numbers as they are (momentum 0, not centered), run the way
    the implementation names: "native" torch.optim's default for the device (on CPU its single-tensor loop),
    "native-foreach" (foreach=True: one multi-tensor kernel per op), "native-fused" (fused=True, Adam only).
    ``capturable`` is torch.optim's own flag, for CUDA graph capture; under torch.compile on CPU torch.optim
    already keeps its step count a tensor."""

    STATE_KEYS = {"adam": {"m": "exp_avg", "v": "exp_avg_sq"}, "rmsprop": {"v": "square_avg"}}
    FLAGS = {"native": {}, "native-foreach": {"foreach": True}, "native-fused": {"fused": True}}

    def __init__(self, opt: Optimizer, params, capturable: bool = False):
        self.params = list(params)
        flags = dict(self.FLAGS[opt.implementation])
        if capturable and self.params[0].device.type == "cuda":
            flags["capturable"] = True
        if opt.name == "adam":
            self.torch = torch.optim.Adam(self.params, lr=opt.lr, betas=(opt.beta1, opt.beta2), eps=opt.eps, **flags)
        else:
            if "fused" in flags:
                raise ValueError("implementation 'native-fused' is invalid for RMSprop: torch.optim.RMSprop has no "
                                 "fused kernel; allowed: spec, native, native-foreach")
            self.torch = torch.optim.RMSprop(self.params, lr=opt.lr, alpha=opt.alpha, eps=opt.eps,
                                             momentum=0.0, centered=False, **flags)
        self.keys = self.STATE_KEYS[opt.name]

    def apply(self, grads) -> None:
        for p, g in zip(self.params, grads):
            p.grad = g
        self.torch.step()
        for p in self.params:
            p.grad = None

    @property
    def t(self) -> int:
        state = self.torch.state.get(self.params[0])
        return int(state["step"].item()) if state else 0

    def moments(self) -> dict:
        # Before the first update torch has no state yet: the moments are zeros then.
        return {name: [self.torch.state[p][key] if self.torch.state.get(p) else torch.zeros_like(p)
                       for p in self.params]
                for name, key in self.keys.items()}

    def set_state(self, t: int, moments: dict) -> None:
        _check_moments(self.moments(), moments)
        self.torch.state.clear()
        if int(t) == 0:
            return  # torch creates its state on the first step
        group = self.torch.param_groups[0]
        on_device = group.get("fused") or group.get("capturable")
        for i, p in enumerate(self.params):
            # As torch.optim's _init_group makes it: a float32 CPU scalar, or on the parameter's device (and
            # float32 as fused kernels want it) when fused or capturable.
            step = torch.tensor(float(t), dtype=_get_scalar_dtype(is_fused=bool(group.get("fused"))),
                                device=p.device if on_device else "cpu")
            state = {"step": step}
            for name, key in self.keys.items():
                state[key] = moments[name][i].detach().clone().to(p.device)
            self.torch.state[p] = state


def _check_moments(own: dict, moments: dict) -> None:
    if set(own) != set(moments):
        raise ValueError(f"optimizer state has {sorted(moments)}, expected {sorted(own)}")
    for key, tensors in own.items():
        if len(tensors) != len(moments[key]):
            raise ValueError(f"optimizer state {key!r}: {len(moments[key])} arrays, expected {len(tensors)}")
        for tensor, value in zip(tensors, moments[key]):
            if tuple(value.shape) != tuple(tensor.shape):
                raise ValueError(f"optimizer state {key!r}: shape {tuple(value.shape)}, expected {tuple(tensor.shape)}")


@torch.no_grad()
def _copy_moments(own: dict, moments: dict) -> None:
    _check_moments(own, moments)
    for key, tensors in own.items():
        for tensor, value in zip(tensors, moments[key]):
            tensor.copy_(value)


CLASSES = {"native": NativeOptimizer, "adam": SpecAdam, "rmsprop": SpecRMSprop}  # by Optimizer.kind


def make_optimizer(opt: Optimizer, params, capturable: bool = False):
    """The optimiser an Optimizer spec names, over ``params`` (a list of parameters); ``capturable`` for a step
    compiled whole (see the module docstring)."""
    return CLASSES[opt.kind](opt, params, capturable)
