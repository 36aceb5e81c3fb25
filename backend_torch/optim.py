"""Optimisers: "spec" = Adam/RMSprop written out op by op; "native" = torch.optim's own.

Spec updates follow torch/optim/adam.py ``_single_tensor_adam`` and rmsprop.py ``_single_tensor_rmsprop``
(torch 2.13, the path torch.optim takes for CPU tensors) op for op, so on CPU they equal torch.optim exactly:
  Adam:    m.lerp_(g, 1 - b1)                         (m + w (g - m), or g - (g - m)(1 - w) when w >= 0.5)
           v.mul_(b2).addcmul_(g, g, value=1 - b2)
           scalars in float64 as Python does them:  step_size = lr / (1 - b1^t), bc2_sqrt = (1 - b2^t)^0.5
           denom = sqrt(v) / bc2_sqrt + eps;  w.addcdiv_(m, denom, value=-step_size)
  RMSprop: v.mul_(alpha).addcmul_(g, g, value=1 - alpha);  w.addcdiv_(g, sqrt(v) + eps, value=-lr)
(On CUDA torch.optim defaults to its foreach kernels, which may differ from these in the last bit.)

Every optimiser here has the same small surface: ``apply(grads)``, ``t`` (updates applied, an int),
``moments()`` -> {"m": [...], "v": [...]} (Adam) or {"v": [...]} (RMSprop), in torch's layout, and
``set_state(t, moments)``.
"""
from __future__ import annotations

import torch

from common.spec import Optimizer


class SpecAdam:
    def __init__(self, opt: Optimizer, params):
        self.params = list(params)
        self.lr, self.beta1, self.beta2, self.eps = opt.lr, opt.beta1, opt.beta2, opt.eps
        self.t = 0
        self.m = [torch.zeros_like(p) for p in self.params]
        self.v = [torch.zeros_like(p) for p in self.params]

    @torch.no_grad()
    def apply(self, grads) -> None:
        self.t += 1
        step = float(self.t)
        bias_correction1 = 1 - self.beta1 ** step
        bias_correction2 = 1 - self.beta2 ** step
        step_size = self.lr / bias_correction1
        bias_correction2_sqrt = bias_correction2 ** 0.5
        for p, g, m, v in zip(self.params, grads, self.m, self.v):
            m.lerp_(g, 1 - self.beta1)
            v.mul_(self.beta2).addcmul_(g, g, value=1 - self.beta2)
            denom = (v.sqrt() / bias_correction2_sqrt).add_(self.eps)
            p.addcdiv_(m, denom, value=-step_size)

    def moments(self) -> dict:
        return {"m": self.m, "v": self.v}

    def set_state(self, t: int, moments: dict) -> None:
        _copy_moments(self.moments(), moments)
        self.t = int(t)


class SpecRMSprop:
    def __init__(self, opt: Optimizer, params):
        self.params = list(params)
        self.lr, self.alpha, self.eps = opt.lr, opt.alpha, opt.eps
        self.t = 0
        self.v = [torch.zeros_like(p) for p in self.params]

    @torch.no_grad()
    def apply(self, grads) -> None:
        self.t += 1
        for p, g, v in zip(self.params, grads, self.v):
            v.mul_(self.alpha).addcmul_(g, g, value=1 - self.alpha)
            p.addcdiv_(g, v.sqrt().add_(self.eps), value=-self.lr)

    def moments(self) -> dict:
        return {"v": self.v}

    def set_state(self, t: int, moments: dict) -> None:
        _copy_moments(self.moments(), moments)
        self.t = int(t)


class NativeOptimizer:
    """torch.optim.Adam / RMSprop with the spec's numbers as they are (momentum 0, not centered)."""

    STATE_KEYS = {"adam": {"m": "exp_avg", "v": "exp_avg_sq"}, "rmsprop": {"v": "square_avg"}}

    def __init__(self, opt: Optimizer, params):
        self.params = list(params)
        if opt.name == "adam":
            self.torch = torch.optim.Adam(self.params, lr=opt.lr, betas=(opt.beta1, opt.beta2), eps=opt.eps)
        else:
            self.torch = torch.optim.RMSprop(self.params, lr=opt.lr, alpha=opt.alpha, eps=opt.eps,
                                             momentum=0.0, centered=False)
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
        for i, p in enumerate(self.params):
            # torch keeps "step" as a float32 CPU tensor (torch.optim.optimizer._get_scalar_dtype()).
            state = {"step": torch.tensor(float(t), dtype=torch.float32)}
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


def make_optimizer(opt: Optimizer, params):
    """The optimiser an Optimizer spec names, over ``params`` (a list of parameters)."""
    return CLASSES[opt.kind](opt, params)
