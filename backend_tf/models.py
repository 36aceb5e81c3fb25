"""Build G and D as Keras models of Dense layers from an MLP spec; load and export neutral weights.

Keras' Dense stores its kernel (in, out), the neutral layout, so weights cross without a transpose.
"""
from __future__ import annotations

import keras
import numpy as np

from common.spec import GAN, MLP


def activation_layer(name: str, leaky_slope: float):
    if name == "relu":
        return keras.layers.ReLU(dtype="float32")
    if name == "leaky_relu":
        # Explicit slope: Keras' LeakyReLU defaults to 0.3, PyTorch's to 0.01.
        return keras.layers.LeakyReLU(negative_slope=leaky_slope, dtype="float32")
    if name in ("tanh", "sigmoid"):
        return keras.layers.Activation(name, dtype="float32")
    raise ValueError(f"activation {name!r} has no layer")


def build_mlp(mlp: MLP, logits: bool = False, name: str | None = None) -> keras.Sequential:
    """Dense layers with the spec's activations; ``logits=True`` leaves the output activation out.

    Initial values are zeros: the real weights always come from ``load_weights`` (common/init.py).
    """
    layers = [keras.Input(shape=(mlp.sizes[0],), dtype="float32")]
    last = len(mlp.layer_shapes) - 1
    for index, (_, fan_out) in enumerate(mlp.layer_shapes):
        layers.append(keras.layers.Dense(fan_out, kernel_initializer="zeros", bias_initializer="zeros",
                                         dtype="float32"))
        activation = mlp.output_activation if index == last else mlp.hidden_activation
        if index == last and logits:
            activation = "linear"
        if activation != "linear":
            layers.append(activation_layer(activation, mlp.leaky_slope))
    return keras.Sequential(layers, name=name)


def build_generator(spec: GAN) -> keras.Sequential:
    """G applies its output activation."""
    return build_mlp(spec.generator, logits=False, name="generator")


def build_discriminator(spec: GAN) -> keras.Sequential:
    """D outputs logits: a sigmoid output is fused into the loss (losses.py)."""
    return build_mlp(spec.discriminator, logits=True, name="discriminator")


def load_weights(model: keras.Model, weights: list[np.ndarray]) -> None:
    """Set a model from a neutral list [k0, b0, k1, b1, ...] (kernels (in, out))."""
    variables = model.trainable_variables
    if len(weights) != len(variables):
        raise ValueError(f"{model.name}: {len(weights)} arrays given, the model has {len(variables)}")
    for index, (variable, value) in enumerate(zip(variables, weights)):
        value = np.asarray(value, dtype=np.float32)
        if tuple(value.shape) != tuple(variable.shape):
            raise ValueError(f"{model.name}: array {index} has shape {value.shape}, expected {tuple(variable.shape)}")
        variable.assign(value)


def export_weights(model: keras.Model) -> list[np.ndarray]:
    """The neutral list [k0, b0, k1, b1, ...] of a model's current weights (float32 copies)."""
    return [np.array(variable.numpy(), dtype=np.float32) for variable in model.trainable_variables]
