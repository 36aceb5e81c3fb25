"""Optimisers: "spec" = PyTorch's Adam/RMSprop written out in jax.numpy; "native" = optax's own, as users run them.

Spec updates follow torch/optim/adam.py ``_single_tensor_adam`` and rmsprop.py ``_single_tensor_rmsprop``
(torch 2.13, the CPU path) op for op, as backend_tf/optim.py does:
  Adam:    m = lerp(m, g, 1 - b1)                    (m + w (g - m), or g - (g - m)(1 - w) when w >= 0.5)
           v = v * b2 + ((1 - b2) * g) * g            (mul_ then addcmul_)
           scalars in float64 as Python does them:  step_size = lr / (1 - b1^t), bc2_sqrt = (1 - b2^t)^0.5
           denom = sqrt(v) / bc2_sqrt + eps;  w = w + (-step_size * m) / denom   (addcdiv_)
  RMSprop: v = v * alpha + ((1 - alpha) * g) * g;  w = w + (-lr * g) / (sqrt(v) + eps)
Constants are the Python doubles rounded to the weights' dtype (as torch casts a scalar where it meets a tensor);
the bias corrections are computed in float64 from the step count (jax_enable_x64, set in backend_jax/__init__.py)
and rounded where they meet the weights, so a jitted step, whose count is traced, computes what the eager one does.

Native: ``optax.adam(lr, b1, b2, eps)`` (epsilon added to the bias-corrected sqrt(v_hat), PyTorch's place, and
``eps_root`` 0, a term inside the square root PyTorch does not have) and ``optax.rmsprop(lr, decay=alpha, eps)``
(optax's defaults: epsilon inside the square root, ``eps_in_sqrt=True``, Keras' place; no momentum, not
centred), applied with ``optax.apply_updates``.

Each optimiser is a pure transformation, as optax's are (the trainer threads its state through jax.jit and
lax.scan): ``init(params) -> state``, ``update(state, params, grads) -> (params, state)``, and the neutral view of
its state: ``count(state)`` (updates applied), ``moments(state)`` -> {"m": [...], "v": [...]} (Adam) or {"v": [...]}
(RMSprop), ``load(state, t, moments)``. ``make_optimizer`` binds one to arrays that live elsewhere, with the small
surface the other backends' optimisers have: ``apply(grads)``, ``t``, ``moments()``, ``set_state(t, moments)``.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

from common.spec import Optimizer

COUNT = jnp.int64  # the step count's dtype (jax_enable_x64)


def _count_state(t=0):
    return jnp.asarray(t, COUNT)


class SpecAdam:
    def __init__(self, opt: Optimizer):
        self.lr, self.beta1, self.beta2, self.eps = opt.lr, opt.beta1, opt.beta2, opt.eps
        self.keras_eps = opt.eps_form == "keras"  # eps / sqrt(1 - b2^t): common/spec.py Optimizer

    def init(self, params) -> dict:
        return {"t": _count_state(), "m": [jnp.zeros_like(p) for p in params], "v": [jnp.zeros_like(p) for p in params]}

    def update(self, state, params, grads):
        t = state["t"] + 1
        step = t.astype(jnp.float64)
        bias_correction1 = 1.0 - jnp.power(jnp.float64(self.beta1), step)
        bias_correction2 = 1.0 - jnp.power(jnp.float64(self.beta2), step)
        dtype = params[0].dtype
        neg_step_size = (-(self.lr / bias_correction1)).astype(dtype)
        eps = (self.eps / jnp.sqrt(bias_correction2)).astype(dtype) if self.keras_eps else jnp.asarray(self.eps, dtype)
        bias_correction2_sqrt = jnp.sqrt(bias_correction2).astype(dtype)
        weight1 = jnp.asarray(1.0 - self.beta1, dtype)
        beta2, weight2 = jnp.asarray(self.beta2, dtype), jnp.asarray(1.0 - self.beta2, dtype)
        new_params, new_m, new_v = [], [], []
        for p, g, m, v in zip(params, grads, state["m"], state["v"]):
            if abs(1.0 - self.beta1) < 0.5:  # torch's lerp picks the formula by the weight's size
                m = m + weight1 * (g - m)
            else:
                m = g - (g - m) * (1.0 - weight1)
            v = v * beta2 + (weight2 * g) * g
            denom = jnp.sqrt(v) / bias_correction2_sqrt + eps
            new_params.append(p + (neg_step_size * m) / denom)
            new_m.append(m)
            new_v.append(v)
        return new_params, {"t": t, "m": new_m, "v": new_v}

    def count(self, state) -> int:
        return int(state["t"])

    def moments(self, state) -> dict:
        return {"m": state["m"], "v": state["v"]}

    def load(self, state, t: int, moments: dict) -> dict:
        return {"t": _count_state(t), **_checked(self.moments(state), moments)}


class SpecRMSprop:
    def __init__(self, opt: Optimizer):
        self.lr, self.alpha, self.eps = opt.lr, opt.alpha, opt.eps

    def init(self, params) -> dict:
        return {"t": _count_state(), "v": [jnp.zeros_like(p) for p in params]}

    def update(self, state, params, grads):
        dtype = params[0].dtype
        alpha, weight = jnp.asarray(self.alpha, dtype), jnp.asarray(1.0 - self.alpha, dtype)
        neg_lr, eps = jnp.asarray(-self.lr, dtype), jnp.asarray(self.eps, dtype)
        new_params, new_v = [], []
        for p, g, v in zip(params, grads, state["v"]):
            v = v * alpha + (weight * g) * g
            new_params.append(p + (neg_lr * g) / (jnp.sqrt(v) + eps))
            new_v.append(v)
        return new_params, {"t": state["t"] + 1, "v": new_v}  # the count is state only: the update ignores it

    def count(self, state) -> int:
        return int(state["t"])

    def moments(self, state) -> dict:
        return {"v": state["v"]}

    def load(self, state, t: int, moments: dict) -> dict:
        return {"t": _count_state(t), **_checked(self.moments(state), moments)}


class NativeOptimizer:
    """optax.adam / optax.rmsprop with the spec's numbers as they are; the count kept beside optax's state (optax's
    rmsprop keeps none)."""

    def __init__(self, opt: Optimizer):
        self.name = opt.name
        if opt.name == "adam":
            self.tx = optax.adam(learning_rate=opt.lr, b1=opt.beta1, b2=opt.beta2, eps=opt.eps)
        else:
            self.tx = optax.rmsprop(learning_rate=opt.lr, decay=opt.alpha, eps=opt.eps)

    def init(self, params) -> dict:
        return {"t": _count_state(), "optax": self.tx.init(list(params))}

    def update(self, state, params, grads):
        updates, inner = self.tx.update(list(grads), state["optax"], list(params))
        return optax.apply_updates(list(params), updates), {"t": state["t"] + 1, "optax": inner}

    def _scale(self, state):
        """optax's state of the scaling transformation (ScaleByAdamState / ScaleByRmsState): the first of the chain."""
        return state["optax"][0]

    def count(self, state) -> int:
        return int(state["t"])

    def moments(self, state) -> dict:
        scale = self._scale(state)
        return {"m": list(scale.mu), "v": list(scale.nu)} if self.name == "adam" else {"v": list(scale.nu)}

    def load(self, state, t: int, moments: dict) -> dict:
        moments = _checked(self.moments(state), moments)
        scale = self._scale(state)
        if self.name == "adam":
            scale = scale._replace(count=jnp.asarray(t, scale.count.dtype), mu=moments["m"], nu=moments["v"])
        else:
            scale = scale._replace(nu=moments["v"])
        return {"t": _count_state(t), "optax": (scale, *state["optax"][1:])}


def _checked(own: dict, moments: dict) -> dict:
    """``moments`` as arrays shaped and typed like ``own`` (the optimiser's current ones), each checked."""
    if set(own) != set(moments):
        raise ValueError(f"optimizer state has {sorted(moments)}, expected {sorted(own)}")
    out = {}
    for key, arrays in own.items():
        if len(arrays) != len(moments[key]):
            raise ValueError(f"optimizer state {key!r}: {len(moments[key])} arrays, expected {len(arrays)}")
        values = []
        for array, value in zip(arrays, moments[key]):
            if tuple(np.shape(value)) != tuple(array.shape):
                raise ValueError(f"optimizer state {key!r}: shape {np.shape(value)}, expected {tuple(array.shape)}")
            values.append(jax.device_put(np.asarray(value, dtype=array.dtype), next(iter(array.devices()))))
        out[key] = values
    return out


CLASSES = {"native": NativeOptimizer, "adam": SpecAdam, "rmsprop": SpecRMSprop}  # by Optimizer.kind


def transform(opt: Optimizer):
    """The pure optimiser an Optimizer spec names."""
    return CLASSES[opt.kind](opt)


class Bound:
    """A pure optimiser bound to arrays that live elsewhere (``read()`` gives them, ``write(arrays)`` replaces them),
    holding its state: the surface of the other backends' optimisers."""

    def __init__(self, tx, read, write):
        self.tx, self.read, self.write = tx, read, write
        self.state = tx.init(read())

    def apply(self, grads) -> None:
        params, self.state = self.tx.update(self.state, self.read(), list(grads))
        self.write(params)

    @property
    def t(self) -> int:
        return self.tx.count(self.state)

    def moments(self) -> dict:
        return self.tx.moments(self.state)

    def set_state(self, t: int, moments: dict) -> None:
        self.state = self.tx.load(self.state, t, moments)


def make_optimizer(opt: Optimizer, params):
    """The optimiser an Optimizer spec names, over ``params``: a list of nnx.Variable, updated in place (a JAX
    user's mutable weights)."""
    params = list(params)

    def write(values):
        for variable, value in zip(params, values):
            variable[...] = value
    return Bound(transform(opt), lambda: [variable[...] for variable in params], write)
