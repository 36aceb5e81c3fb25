"""Initial weights in numpy, in one neutral layout, so both backends start from identical numbers.

Layout: for each network a flat list ``[kernel0, bias0, kernel1, bias1, ...]`` with kernels shaped
``(fan_in, fan_out)`` (Keras' Dense layout; PyTorch's Linear stores the transpose) and float32 values.
"""
from __future__ import annotations

import numpy as np

from common.spec import GAN, INIT_SCHEMES, MLP

Weights = dict[str, list[np.ndarray]]  # {"generator": [...], "discriminator": [...]}

# How a run's initial weights are made: the seed's own ("seed"), or those moved by one ulp ("seed+ulp"), the
# chaos floor's twin: the same framework from weights one unit in the last place away, same data and noise.
INITS = ("seed", "seed+ulp")


def init_mlp(mlp: MLP, scheme: str, rng: np.random.Generator) -> list[np.ndarray]:
    """Draw one MLP's weights.

    ``torch_default`` is what ``nn.Linear.reset_parameters`` does: kaiming_uniform_(a=sqrt(5)) for the
    kernel, which is U(-1/sqrt(fan_in), 1/sqrt(fan_in)), and the same bound for the bias.
    ``glorot_uniform`` is Keras' Dense default: U(-sqrt(6/(fan_in+fan_out)), +...) and zero bias.
    """
    if scheme not in INIT_SCHEMES:
        raise ValueError(f"init scheme {scheme!r} is invalid; allowed: {', '.join(INIT_SCHEMES)}")
    weights = []
    for fan_in, fan_out in mlp.layer_shapes:
        if scheme == "torch_default":
            bound = 1.0 / np.sqrt(fan_in)
            kernel = rng.uniform(-bound, bound, size=(fan_in, fan_out))
            bias = rng.uniform(-bound, bound, size=(fan_out,))
        else:
            limit = np.sqrt(6.0 / (fan_in + fan_out))
            kernel = rng.uniform(-limit, limit, size=(fan_in, fan_out))
            bias = np.zeros(fan_out)
        weights += [kernel.astype(np.float32), bias.astype(np.float32)]
    return weights


def init_weights(spec: GAN, seed: int) -> Weights:
    """Both networks' initial weights from one seed (generator first, then discriminator)."""
    rng = np.random.default_rng([seed, 0x1A17])  # a stream of its own, apart from the data stream
    return {
        "generator": init_mlp(spec.generator, spec.init, rng),
        "discriminator": init_mlp(spec.discriminator, spec.init, rng),
    }


def nudge_ulp(weights: Weights) -> Weights:
    """Every weight moved one unit in the last place towards +inf (np.nextafter): the smallest change float32
    can make to every coordinate at once, so the twin run measures how fast training amplifies rounding."""
    return {net: [np.nextafter(w, np.float32(np.inf)).astype(w.dtype) for w in arrays] for net, arrays in weights.items()}


def initial_weights(spec: GAN, seed: int, init: str = "seed") -> Weights:
    """The run's initial weights: ``init_weights`` of the seed, nudged by one ulp for ``init="seed+ulp"``."""
    if init not in INITS:
        raise ValueError(f"init {init!r} is invalid; allowed: {', '.join(INITS)}")
    weights = init_weights(spec, seed)
    return nudge_ulp(weights) if init == "seed+ulp" else weights
