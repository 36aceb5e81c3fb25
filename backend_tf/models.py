"""Build G and D as Keras models from the spec's layer lists; load and export neutral weights and statistics.

TensorFlow convolves NHWC only on CPU, so a ``Net`` keeps its image activations NHWC inside and converts at its
edges, here and only here: flat data in C, H, W order are reshaped to (B, C, H, W) and transposed to NHWC at the
input, images are transposed back to NCHW before they are flattened (the output, a Flatten) or reshaped (a
Reshape), and dropout masks, neutral (B, C, H, W), are transposed like the activations they multiply. Keras'
own Flatten would flatten H, W, C; the neutral order is C, H, W. Weights: Dense (in, out) and Conv2D
(kh, kw, in, out) are the neutral layouts; Conv2DTranspose stores (kh, kw, out, in) and is swapped.

Layers are Keras' own (Dense, Conv2D, Conv2DTranspose, ReLU, LeakyReLU, Activation, BatchNormalization),
called as layers. Padding Keras cannot express as "same" or "valid" is added or cropped around the layer
(ZeroPadding2D, Cropping2D). BatchNorm subclasses Keras' BatchNormalization: its own call in evaluation, its
training branch written out (the same values bit for bit, an exact second derivative: ``Norm``).
"""
from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf

from common.spec import (GAN, Activation, BatchNorm, Conv2D, ConvTranspose2D, Dense, Dropout, Flatten, LayerInfo,
                         Maxout, Network, Reshape, conv_pads)

# Every layer and the Net itself carry the spec's dtype (common.spec.GAN.dtype) as their own dtype policy: Keras
# casts a layer's inputs to its compute dtype, and a per-model policy keeps runs from leaking into each other
# (keras.config.set_floatx would be global).
TO_NHWC, TO_NCHW = (0, 2, 3, 1), (0, 3, 1, 2)


class LeakyReLU64(keras.layers.Layer):
    """LeakyReLU with its slope in the layer's own dtype: x where x > 0, else slope * x (torch's formula and
    gradient, the gradient at 0 being the slope). keras.layers.LeakyReLU calls TensorFlow's LeakyRelu op, whose
    ``alpha`` is a float32 attribute (gen_nn_ops.leaky_relu: ``_execute.make_float``): in float64 its slope 0.2
    is 0.2 rounded to float32, 1.5e-8 relative off (measured: G(z) 1.2e-9 apart from PyTorch's, where float64
    leaves 1e-16). float32 runs keep Keras' own layer."""

    def __init__(self, negative_slope: float, **kwargs):
        super().__init__(**kwargs)
        self.negative_slope = negative_slope

    def call(self, x):
        return tf.where(x > 0, x, x * tf.constant(self.negative_slope, x.dtype))

    def compute_output_shape(self, input_shape):
        return input_shape


def activation_layer(name: str, leaky_slope: float, dtype: str = "float32"):
    if name == "relu":
        return keras.layers.ReLU(dtype=dtype)
    if name == "leaky_relu":
        # Explicit slope: Keras' LeakyReLU defaults to 0.3, PyTorch's to 0.01.
        if dtype != "float32":
            return LeakyReLU64(leaky_slope, dtype=dtype)
        return keras.layers.LeakyReLU(negative_slope=leaky_slope, dtype=dtype)
    if name in ("tanh", "sigmoid", "linear"):
        return keras.layers.Activation(name, dtype=dtype)
    raise ValueError(f"activation {name!r} has no layer")


class Norm(keras.layers.BatchNormalization):
    """A spec BatchNorm: Keras' BatchNormalization with momentum = 1 - the spec's (Keras keeps that share).

    Evaluation is Keras' own call. Training is Keras' training branch (batch_normalization.py call(), l.364-405)
    written out with one change that leaves every value bit for bit: the variance is reduce_mean(squared_difference
    (x, mean)) without the stop_gradient that tf.nn.moments puts on the mean. That stop_gradient keeps first
    derivatives exact (the gradient it stops is zero) but not second ones (d/dx of (x - mean) loses its -1/n): a
    WGAN-GP penalty through a BatchNorm'd critic then differentiates a different function in Keras than in
    PyTorch, whose double backward is exact (tests/test_parity.py measures both). Written out, the branch also
    skips the update on a recomputed pass and updates an unbiased running variance when the spec asks.
    """

    def __init__(self, spec: BatchNorm, dtype: str = "float32", **kwargs):
        super().__init__(axis=-1, momentum=1.0 - spec.momentum, epsilon=spec.eps, center=spec.affine,
                         scale=spec.affine, beta_initializer="zeros", gamma_initializer="ones", dtype=dtype, **kwargs)
        self.unbiased = spec.running_variance == "unbiased"

    def call(self, inputs, training=None, update_stats=True):
        if not training:
            return super().call(inputs, training=False)  # Keras' own: the moving statistics
        axes = list(range(len(inputs.shape) - 1))
        mean = tf.reduce_mean(inputs, axes, keepdims=True)
        variance = tf.squeeze(tf.reduce_mean(tf.math.squared_difference(inputs, mean), axes, keepdims=True), axes)
        mean = tf.squeeze(mean, axes)
        if update_stats:
            batch_variance = variance
            if self.unbiased:
                n = tf.cast(tf.size(inputs) // tf.shape(inputs)[-1], inputs.dtype)
                batch_variance = variance * (n / (n - 1.0))
            self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
            self.moving_variance.assign(self.moving_variance * self.momentum + batch_variance * (1.0 - self.momentum))
        return keras.ops.batch_normalization(inputs, mean, variance, axis=-1, offset=self.beta if self.center else None,
                                             scale=self.gamma if self.scale else None, epsilon=self.epsilon)


def _internal(shape: tuple[int, ...]) -> tuple:
    """The Keras input shape of a neutral example shape: (None, H, W, C) for images, (None, F) for vectors."""
    return (None, *shape[1:], shape[0]) if len(shape) == 3 else (None, *shape)


def layer_stage(info: LayerInfo, dtype: str = "float32") -> list:
    """The Keras layer(s) of one resolved spec layer, in ``dtype``."""
    layer, shape = info.layer, info.in_shape
    zeros = {"kernel_initializer": "zeros", "bias_initializer": "zeros", "dtype": dtype}
    if isinstance(layer, Dense):
        return [keras.layers.Dense(layer.units, use_bias=layer.bias, **zeros)]
    if isinstance(layer, (Conv2D, ConvTranspose2D)):
        pads = info.pads
        transpose = isinstance(layer, ConvTranspose2D)
        padding = "same" if pads == conv_pads(layer, shape[1:], "same") else "valid"
        if transpose:  # output_padding=0 makes "valid" the full (in - 1) * stride + k even when k < stride
            conv = keras.layers.Conv2DTranspose(layer.filters, layer.kernel, strides=layer.stride, padding=padding,
                                                output_padding=0 if padding == "valid" else None,
                                                use_bias=layer.bias, **zeros)
        else:
            conv = keras.layers.Conv2D(layer.filters, layer.kernel, strides=layer.stride, padding=padding,
                                       use_bias=layer.bias, **zeros)
        if padding == "same" or pads == (0, 0, 0, 0):
            return [conv]
        sides = ((pads[0], pads[1]), (pads[2], pads[3]))
        return [conv, keras.layers.Cropping2D(sides, dtype=dtype)] if transpose else \
            [keras.layers.ZeroPadding2D(sides, dtype=dtype), conv]
    if isinstance(layer, BatchNorm):
        return [Norm(layer, dtype)]
    if isinstance(layer, Activation):
        return [activation_layer(layer.name, layer.slope, dtype)]
    return []  # Dropout, Reshape, Flatten, Maxout: applied in Net.call


class Net(keras.Model):
    """A spec Network: ``call(x, training=False, masks=None, update_stats=True)`` on flat (B, prod(input_shape))
    inputs, returning (B, prod(output_shape)) in the neutral order. ``masks``: (B, dropout_units), D's dropout
    masks of this pass; ``update_stats`` False: a recomputed training pass, BatchNorm statistics left alone."""

    def __init__(self, network: Network, name: str, dtype: str = "float32"):
        super().__init__(name=name, dtype=dtype)
        self.network = network
        self.blocks = []  # (spec layer info, first, last) into self.units
        units = []
        for info in network.layer_info:
            stage = layer_stage(info, dtype)
            self.blocks.append((info, len(units), len(units) + len(stage)))
            shape = _internal(info.in_shape)
            for unit in stage:
                unit.build(shape)
                shape = unit.compute_output_shape(shape)
            units += stage
        self.units = units
        self.layouts = [kind for _, kind, _ in network.parameters()]
        self.dropouts = {i: (int(np.prod(s)), s) for i, s in network.dropout_layers()}
        self.built = True  # every layer is built above: Keras must not trace call() symbolically to build

    def call(self, x, training=False, masks=None, update_stats=True):
        net = self.network
        if len(net.input_shape) == 3:
            x = tf.transpose(tf.reshape(x, (-1, *net.input_shape)), TO_NHWC)
        offset = 0
        for index, (info, first, last) in enumerate(self.blocks):
            layer = info.layer
            if isinstance(layer, BatchNorm):
                x = self.units[first](x, training=training, update_stats=update_stats)
            elif isinstance(layer, Dropout):
                n, shape = self.dropouts[index]
                if training and masks is not None:
                    mask = tf.reshape(masks[:, offset:offset + n], (-1, *shape))
                    x = x * (tf.transpose(mask, TO_NHWC) if len(shape) == 3 else mask)
                offset += n
            elif isinstance(layer, Maxout):  # Keras has no maxout layer: the spec's reshape and max
                x = tf.reduce_max(tf.reshape(x, (-1, info.out_shape[0], layer.pieces)), axis=2)
            elif isinstance(layer, (Reshape, Flatten)):
                if len(x.shape) == 4:
                    x = tf.transpose(x, TO_NCHW)  # the neutral order before any reshape
                target = layer.shape if isinstance(layer, Reshape) else (math.prod(info.in_shape),)
                x = tf.reshape(x, (-1, *target))
                if len(target) == 3:
                    x = tf.transpose(x, TO_NHWC)
            else:
                for unit in self.units[first:last]:
                    x = unit(x)
        if len(x.shape) == 4:
            x = tf.reshape(tf.transpose(x, TO_NCHW), (-1, math.prod(net.output_shape)))
        return x


def build_generator(spec: GAN) -> Net:
    """G applies its output activation."""
    return Net(spec.generator_network, name="generator", dtype=spec.dtype)


def build_discriminator(spec: GAN) -> Net:
    """D outputs logits: a sigmoid output is fused into the loss (losses.py)."""
    return Net(spec.discriminator_network, name="discriminator", dtype=spec.dtype)


def numpy_dtype(variable):
    """The numpy dtype of a Keras variable (its dtype a string) or a tf.Variable (a tf.DType)."""
    return tf.as_dtype(variable.dtype).as_numpy_dtype


def _to_neutral(value: np.ndarray, kind: str) -> np.ndarray:
    return value.swapaxes(2, 3) if kind == "conv_transpose_kernel" else value  # Keras (kh, kw, out, in)


def load_weights(model: Net, weights: list[np.ndarray]) -> None:
    """Set a model from its neutral weight list (common/init.py's layout)."""
    variables = model.trainable_variables
    if len(weights) != len(variables):
        raise ValueError(f"{model.name}: {len(weights)} arrays given, the model has {len(variables)}")
    for index, (variable, value, kind) in enumerate(zip(variables, weights, model.layouts)):
        value = _to_neutral(np.asarray(value, dtype=numpy_dtype(variable)), kind)  # the swap is its own inverse
        if tuple(value.shape) != tuple(variable.shape):
            raise ValueError(f"{model.name}: array {index} has shape {np.shape(weights[index])}, "
                             f"expected {tuple(_to_neutral(np.empty(variable.shape), kind).shape)}")
        variable.assign(value)


def export_weights(model: Net) -> list[np.ndarray]:
    """The neutral weight list of a model's current weights (copies in the model's dtype)."""
    return [np.array(_to_neutral(variable.numpy(), kind))
            for variable, kind in zip(model.trainable_variables, model.layouts)]


def to_neutral(variables, layouts) -> list[np.ndarray]:
    """Numpy copies of per-weight tensors (optimiser moments) in the neutral layout, in their own dtype."""
    return [np.array(_to_neutral(np.asarray(v), kind)) for v, kind in zip(variables, layouts)]


def from_neutral(arrays, layouts) -> list[np.ndarray]:
    """Neutral arrays in Keras' layout (the optimiser casts them to its variables' dtype)."""
    return [_to_neutral(np.asarray(a), kind) for a, kind in zip(arrays, layouts)]


def statistics(model: Net) -> list:
    return [v for unit in model.units if isinstance(unit, Norm) for v in (unit.moving_mean, unit.moving_variance)]


def export_statistics(model: Net) -> list[np.ndarray]:
    return [np.array(v.numpy()) for v in statistics(model)]


def load_statistics(model: Net, arrays: list[np.ndarray]) -> None:
    variables = statistics(model)
    if len(arrays) != len(variables):
        raise ValueError(f"{model.name}: {len(arrays)} statistics given, the model has {len(variables)}")
    for index, (variable, value) in enumerate(zip(variables, arrays)):
        if tuple(np.shape(value)) != tuple(variable.shape):
            raise ValueError(f"{model.name}: statistic {index} has shape {np.shape(value)}, "
                             f"expected {tuple(variable.shape)}")
        variable.assign(np.asarray(value, dtype=numpy_dtype(variable)))
