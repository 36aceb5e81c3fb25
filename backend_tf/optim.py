"""Optimisers: "spec" = PyTorch's Adam/RMSprop written out in TF ops; "native" = Keras' own.

Spec updates follow torch/optim/adam.py ``_single_tensor_adam`` and rmsprop.py ``_single_tensor_rmsprop``
(torch 2.13, the CPU path) op for op:
  Adam:    m = lerp(m, g, 1 - b1)                    (m + w (g - m), or g - (g - m)(1 - w) when w >= 0.5)
           v = v * b2 + ((1 - b2) * g) * g            (mul_ then addcmul_)
           scalars in float64 as Python does them:  step_size = lr / (1 - b1^t), bc2_sqrt = (1 - b2^t)^0.5
           denom = sqrt(v) / bc2_sqrt + eps;  w = w + (-step_size * m) / denom   (addcdiv_)
  RMSprop: v = v * alpha + ((1 - alpha) * g) * g;  w = w + (-lr * g) / (sqrt(v) + eps)
Remaining difference at the last bit: torch's vectorised CPU lerp uses a fused multiply-add.

Keras' Adam (keras/src/optimizers/adam.py update_step) adds epsilon to the uncorrected sqrt(v) ("epsilon
hat"), and Keras' RMSprop puts epsilon inside the sqrt: with the same numbers they differ from PyTorch's.

Constants and the bias corrections are cast to the weights' dtype (float32, or float64 when the spec says so), as
torch casts a Python float where it meets a tensor.

Every optimiser here has the same small surface: ``apply(grads)``, ``t`` (a variable: updates applied),
``moments()`` -> {"m": [...], "v": [...]} (Adam) or {"v": [...]} (RMSprop), and ``set_state``.
"""
from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from common.spec import Optimizer


class SpecAdam:
    def __init__(self, opt: Optimizer, params):
        self.params = list(params)
        self.lr, self.beta1, self.beta2, self.eps = opt.lr, opt.beta1, opt.beta2, opt.eps
        self.keras_eps = opt.eps_form == "keras"  # eps / sqrt(1 - b2^t): common/spec.py Optimizer
        self.dtype = tf.as_dtype(self.params[0].dtype)
        self.t = tf.Variable(0, dtype=tf.int64, trainable=False, name="t")
        self.m = [tf.Variable(tf.zeros_like(p), trainable=False, name="m") for p in self.params]
        self.v = [tf.Variable(tf.zeros_like(p), trainable=False, name="v") for p in self.params]

    def apply(self, grads) -> None:
        self.t.assign_add(1)
        step = tf.cast(self.t, tf.float64)
        # Python floats in torch: the bias corrections are double, cast to the weights' dtype where they meet a tensor.
        bias_correction1 = 1.0 - tf.pow(tf.constant(self.beta1, tf.float64), step)
        bias_correction2 = 1.0 - tf.pow(tf.constant(self.beta2, tf.float64), step)
        neg_step_size = tf.cast(-(self.lr / bias_correction1), self.dtype)
        eps = tf.cast(self.eps / tf.sqrt(bias_correction2), self.dtype) if self.keras_eps else \
            self.dtype.as_numpy_dtype(self.eps)
        bias_correction2_sqrt = tf.cast(tf.sqrt(bias_correction2), self.dtype)
        c = self.dtype.as_numpy_dtype  # np.float32 or np.float64
        weight1 = c(1.0 - self.beta1)
        for p, g, m, v in zip(self.params, grads, self.m, self.v):
            if abs(weight1) < 0.5:  # torch's lerp picks the formula by the weight's size
                m.assign_add(weight1 * (g - m))
            else:
                m.assign(g - (g - m) * (c(1.0) - weight1))
            v.assign(v * c(self.beta2) + (c(1.0 - self.beta2) * g) * g)
            denom = tf.sqrt(v) / bias_correction2_sqrt + eps
            p.assign_add((neg_step_size * m) / denom)

    def moments(self) -> dict:
        return {"m": self.m, "v": self.v}

    def set_state(self, t: int, moments: dict) -> None:
        _assign_state(self.t, self.moments(), t, moments)


class SpecRMSprop:
    def __init__(self, opt: Optimizer, params):
        self.params = list(params)
        self.lr, self.alpha, self.eps = opt.lr, opt.alpha, opt.eps
        self.dtype = tf.as_dtype(self.params[0].dtype)
        self.t = tf.Variable(0, dtype=tf.int64, trainable=False, name="t")
        self.v = [tf.Variable(tf.zeros_like(p), trainable=False, name="v") for p in self.params]

    def apply(self, grads) -> None:
        self.t.assign_add(1)
        c = self.dtype.as_numpy_dtype
        for p, g, v in zip(self.params, grads, self.v):
            v.assign(v * c(self.alpha) + (c(1.0 - self.alpha) * g) * g)
            p.assign_add((c(-self.lr) * g) / (tf.sqrt(v) + c(self.eps)))

    def moments(self) -> dict:
        return {"v": self.v}

    def set_state(self, t: int, moments: dict) -> None:
        _assign_state(self.t, self.moments(), t, moments)


class NativeOptimizer:
    """keras.optimizers.Adam / RMSprop with the spec's numbers as they are (momentum 0, not centered)."""

    def __init__(self, opt: Optimizer, params):
        self.params = list(params)
        if opt.name == "adam":
            self.keras = keras.optimizers.Adam(learning_rate=opt.lr, beta_1=opt.beta1, beta_2=opt.beta2,
                                               epsilon=opt.eps)
        else:
            self.keras = keras.optimizers.RMSprop(learning_rate=opt.lr, rho=opt.alpha, epsilon=opt.eps,
                                                  momentum=0.0, centered=False)
        self.name = opt.name
        # Built now, eagerly: a tf.function may create variables only on its first trace.
        self.keras.build(self.params)
        self.t = self.keras.iterations

    def apply(self, grads) -> None:
        self.keras.apply(list(grads), self.params)

    def moments(self) -> dict:
        if self.name == "adam":
            return {"m": list(self.keras._momentums), "v": list(self.keras._velocities)}
        return {"v": list(self.keras._velocities)}

    def set_state(self, t: int, moments: dict) -> None:
        _assign_state(self.t, self.moments(), t, moments)


def _assign_state(t_variable, own: dict, t: int, moments: dict) -> None:
    if set(own) != set(moments):
        raise ValueError(f"optimizer state has {sorted(moments)}, expected {sorted(own)}")
    t_variable.assign(int(t))
    for key, variables in own.items():
        if len(variables) != len(moments[key]):
            raise ValueError(f"optimizer state {key!r}: {len(moments[key])} arrays, expected {len(variables)}")
        for variable, value in zip(variables, moments[key]):
            if tuple(np.shape(value)) != tuple(variable.shape):
                raise ValueError(f"optimizer state {key!r}: shape {np.shape(value)}, expected {tuple(variable.shape)}")
            variable.assign(np.asarray(value, dtype=tf.as_dtype(variable.dtype).as_numpy_dtype))


CLASSES = {"native": NativeOptimizer, "adam": SpecAdam, "rmsprop": SpecRMSprop}  # by Optimizer.kind


def make_optimizer(opt: Optimizer, params):
    """The optimiser an Optimizer spec names, over ``params`` (a list of variables)."""
    return CLASSES[opt.kind](opt, params)
