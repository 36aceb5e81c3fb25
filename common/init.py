"""Initial weights in numpy, in one neutral layout, so both backends start from identical numbers.

Layout: for each network a flat list ``[kernel0, bias0, kernel1, bias1, ...]`` with kernels shaped
``(fan_in, fan_out)`` (Keras' Dense layout; PyTorch's Linear stores the transpose) and float32 values.
"""
from __future__ import annotations

import numpy as np

from common.spec import GAN, INIT_SCHEMES, MLP

Weights = dict[str, list[np.ndarray]]  # {"generator": [...], "discriminator": [...]}


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
