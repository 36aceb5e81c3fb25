"""Build G and D as torch modules of Linear layers from an MLP spec; load and export neutral weights.

nn.Linear stores its weight (out, in), the transpose of the neutral kernel (in, out): weights and
optimiser moments are transposed on the way in and out (``to_neutral`` / ``from_neutral``).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from common.spec import GAN, MLP


def activation_layer(name: str, leaky_slope: float) -> nn.Module:
    if name == "relu":
        return nn.ReLU()
    if name == "leaky_relu":
        # Explicit slope: PyTorch's LeakyReLU defaults to 0.01, Keras' to 0.3.
        return nn.LeakyReLU(negative_slope=leaky_slope)
    if name == "tanh":
        return nn.Tanh()
    if name == "sigmoid":
        return nn.Sigmoid()
    raise ValueError(f"activation {name!r} has no layer")


def build_mlp(mlp: MLP, logits: bool = False) -> nn.Sequential:
    """Linear layers with the spec's activations; ``logits=True`` leaves the output activation out.

    The initial values torch draws are overwritten: the real weights always come from ``load_weights``.
    """
    layers = []
    last = len(mlp.layer_shapes) - 1
    for index, (fan_in, fan_out) in enumerate(mlp.layer_shapes):
        layers.append(nn.Linear(fan_in, fan_out, dtype=torch.float32))
        activation = mlp.output_activation if index == last else mlp.hidden_activation
        if index == last and logits:
            activation = "linear"
        if activation != "linear":
            layers.append(activation_layer(activation, mlp.leaky_slope))
    return nn.Sequential(*layers)


def build_generator(spec: GAN) -> nn.Sequential:
    """G applies its output activation."""
    return build_mlp(spec.generator, logits=False)


def build_discriminator(spec: GAN) -> nn.Sequential:
    """D outputs logits: a sigmoid output is fused into the loss (losses.py)."""
    return build_mlp(spec.discriminator, logits=True)


def to_neutral(tensors) -> list[np.ndarray]:
    """Float32 numpy copies in the neutral layout: 2-D tensors (out, in) become kernels (in, out)."""
    return [np.array(t.detach().cpu().numpy().T if t.ndim == 2 else t.detach().cpu().numpy(), dtype=np.float32)
            for t in tensors]


def from_neutral(arrays, like) -> list[torch.Tensor]:
    """Tensors shaped and placed like ``like`` from neutral arrays (kernels (in, out) are transposed)."""
    if len(arrays) != len(like):
        raise ValueError(f"{len(arrays)} arrays given, expected {len(like)}")
    tensors = []
    for index, (value, target) in enumerate(zip(arrays, like)):
        value = np.asarray(value, dtype=np.float32)
        if value.ndim == 2:
            value = value.T
        if tuple(value.shape) != tuple(target.shape):
            raise ValueError(f"array {index} has shape {np.shape(arrays[index])}, "
                             f"expected {tuple(reversed(target.shape)) if target.ndim == 2 else tuple(target.shape)}")
        tensors.append(torch.tensor(np.ascontiguousarray(value), dtype=torch.float32, device=target.device))
    return tensors


def load_weights(model: nn.Module, weights: list[np.ndarray]) -> None:
    """Set a model from a neutral list [k0, b0, k1, b1, ...] (kernels (in, out))."""
    params = list(model.parameters())
    with torch.no_grad():
        for param, value in zip(params, from_neutral(weights, params)):
            param.copy_(value)


def export_weights(model: nn.Module) -> list[np.ndarray]:
    """The neutral list [k0, b0, k1, b1, ...] of a model's current weights (float32 copies)."""
    return to_neutral(model.parameters())
