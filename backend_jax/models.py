"""Build G and D as Flax NNX modules from the spec's layer lists; load and export neutral weights and statistics.

Layers are Flax's own (nnx.Linear, nnx.Conv, nnx.ConvTranspose, nnx.BatchNorm), called as modules; activations
are jax.nn's. Flax convolves NHWC (lax.conv_general_dilated with dimension numbers NHWC/HWIO), so a ``Net``
keeps image activations NHWC inside and converts at its edges, here and only here, as the TensorFlow backend does:
flat data in C, H, W order are reshaped to (B, C, H, W) and transposed to NHWC at the input, images are transposed
back to NCHW before they are flattened or reshaped, and dropout masks, neutral (B, C, H, W), are transposed like
the activations they multiply. Weights: nnx.Linear's kernel (in, out) and nnx.Conv's (kh, kw, in, out) are the
neutral layouts; nnx.ConvTranspose with ``transpose_kernel=True`` (the gradient of a convolution, as PyTorch's
and Keras' transposed convolutions are) stores (kh, kw, out, in) and is swapped.

Padding: nnx.Conv takes the spec's (top, bottom, left, right) as explicit pairs. nnx.ConvTranspose's explicit
padding is lax.conv_transpose's, the padding of the stride-dilated input (not PyTorch's crop, Flax's docstring
warns): a crop of c pixels is k - 1 - c there, so the spec's crops are passed as (k - 1 - top, k - 1 - bottom).

Every layer is built with ``precision=HIGHEST`` (no TF32 / bf16 passes on a GPU) and with Flax's zeros and ones
initializers, which ignore their key: the modules are given ``NO_RNGS`` instead of an nnx.Rngs, so no PRNG key is
ever made (weights come from common/init.py through ``load_weights``).

BatchNorm (``Norm``) is nnx.BatchNorm with ``use_fast_variance=False`` (Flax's default computes the variance as
E[x^2] - E[x]^2, which cancels catastrophically and differs from PyTorch's and Keras' E[(x - mean)^2]); its
evaluation and training outputs are Flax's own call; its running statistics are updated in the spec's one
convention (common/spec.py BatchNorm: PyTorch's momentum, biased or unbiased variance), not in Flax's (momentum
0.99 = the share kept, always the biased variance), and left alone on a recomputed pass.

The trainer differentiates and compiles pure functions, so a network crosses ``jax.grad`` and ``jax.jit`` as
arrays: ``Model`` holds the module's graph (nnx.split) and its current values as two lists in the neutral order,
``params`` (Flax's layouts) and ``stats``; ``Model.apply`` merges them into the module (nnx.merge), calls it and
returns the output with the statistics the pass left.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from common.spec import (GAN, Activation, BatchNorm, Conv2D, ConvTranspose2D, Dense, Dropout, Flatten, Maxout,
                         Network, Reshape)

DTYPES = {"float32": jnp.float32, "float64": jnp.float64}  # by common.spec.GAN.dtype
TO_NHWC, TO_NCHW = (0, 2, 3, 1), (0, 3, 1, 2)
HIGHEST = jax.lax.Precision.HIGHEST
ZEROS, ONES = nnx.initializers.zeros, nnx.initializers.ones


class _NoRngs:
    """Stands in for nnx.Rngs where Flax's layers ask for a key: every layer here is built with zeros and ones
    initializers, which ignore it, so no key is made and JAX's PRNG never runs."""

    def params(self):
        return None


NO_RNGS = _NoRngs()


def activation(name: str, x, slope: float):
    if name == "relu":
        return jax.nn.relu(x)  # gradient 0 at 0, as torch and TensorFlow
    if name == "leaky_relu":
        # x where x > 0, else slope * x: the spec's formula, gradient at 0 the slope (torch's and the TF backend's);
        # jax.nn.leaky_relu uses x >= 0. Explicit slope: Flax's default is 0.01, Keras' 0.3.
        return jnp.where(x > 0, x, x * slope)
    if name == "tanh":
        return jnp.tanh(x)
    if name == "sigmoid":
        return jax.nn.sigmoid(x)
    if name == "linear":
        return x
    raise ValueError(f"activation {name!r} has no function")


class Norm(nnx.BatchNorm):
    """A spec BatchNorm over nnx.BatchNorm's own parameters (scale, bias) and statistics (mean, var)."""

    def __init__(self, spec: BatchNorm, channels: int, dtype):
        super().__init__(channels, momentum=1.0 - spec.momentum, epsilon=spec.eps, use_bias=spec.affine,
                         use_scale=spec.affine, use_fast_variance=False, dtype=dtype, param_dtype=dtype,
                         bias_init=ZEROS, scale_init=ONES, rngs=NO_RNGS)
        # nnx.BatchNorm keeps its statistics in float32 whatever the dtype: the spec's dtype here
        self.mean = nnx.BatchStat(jnp.zeros((channels,), dtype))
        self.var = nnx.BatchStat(jnp.ones((channels,), dtype))
        self.spec_momentum = spec.momentum
        self.unbiased = spec.running_variance == "unbiased"

    def __call__(self, x, training: bool = False, update_stats: bool = True):
        if not training:
            return super().__call__(x, use_running_average=True)
        mean, var = self.mean[...], self.var[...]
        out = super().__call__(x, use_running_average=False)  # Flax's training pass: the batch's own statistics
        if update_stats:  # the spec's convention, from the batch statistics Flax normalised with
            axes = tuple(range(x.ndim - 1))
            batch_mean = jnp.mean(x, axes)
            batch_var = jnp.mean(jnp.square(x - batch_mean), axes)  # Flax's _compute_stats, use_fast_variance=False
            if self.unbiased:
                n = x.size // x.shape[-1]
                batch_var = batch_var * (n / (n - 1.0))
            m = self.spec_momentum
            mean = jax.lax.stop_gradient((1.0 - m) * mean + m * batch_mean)
            var = jax.lax.stop_gradient((1.0 - m) * var + m * batch_var)
        self.mean[...], self.var[...] = mean, var  # a recomputed pass: Flax's update undone
        return out


def layer_module(info, dtype):
    """The Flax module of one resolved spec layer (None where Net.__call__ applies the layer itself)."""
    layer, shape = info.layer, info.in_shape
    common = {"use_bias": getattr(layer, "bias", True), "dtype": dtype, "param_dtype": dtype, "precision": HIGHEST,
              "kernel_init": ZEROS, "bias_init": ZEROS, "rngs": NO_RNGS}
    if isinstance(layer, Dense):
        return nnx.Linear(shape[0], layer.units, **common)
    if isinstance(layer, Conv2D):
        top, bottom, left, right = info.pads
        return nnx.Conv(shape[0], layer.filters, layer.kernel, layer.stride, padding=((top, bottom), (left, right)),
                        **common)
    if isinstance(layer, ConvTranspose2D):
        (kh, kw), (top, bottom, left, right) = layer.kernel, info.pads
        padding = ((kh - 1 - top, kh - 1 - bottom), (kw - 1 - left, kw - 1 - right))
        return nnx.ConvTranspose(shape[0], layer.filters, layer.kernel, layer.stride, padding=padding,
                                 transpose_kernel=True, **common)
    if isinstance(layer, BatchNorm):
        return Norm(layer, shape[0], dtype)
    return None  # Activation, Dropout, Reshape, Flatten, Maxout: applied in Net.__call__


class Net(nnx.Module):
    """A spec Network: ``__call__(x, training=False, masks=None, update_stats=True)`` on flat (B, prod(input_shape))
    inputs, returning (B, prod(output_shape)) in the neutral order. ``masks``: (B, dropout_units), D's dropout
    masks of this pass; ``update_stats`` False: a recomputed training pass, BatchNorm statistics left alone."""

    def __init__(self, network: Network, dtype=jnp.float32):
        self.network = network
        modules = [layer_module(info, dtype) for info in network.layer_info]
        self.units = nnx.List([m for m in modules if m is not None])
        positions, count = [], 0
        for m in modules:
            positions.append(None if m is None else count)
            count += m is not None
        self.positions = tuple(positions)  # spec layer -> its module in self.units
        self.dropouts = {i: (int(np.prod(s)), s) for i, s in network.dropout_layers()}

    def __call__(self, x, training: bool = False, masks=None, update_stats: bool = True):
        net = self.network
        if len(net.input_shape) == 3:
            x = jnp.transpose(jnp.reshape(x, (-1, *net.input_shape)), TO_NHWC)
        offset = 0
        for index, info in enumerate(net.layer_info):
            layer = info.layer
            if isinstance(layer, BatchNorm):
                x = self.units[self.positions[index]](x, training, update_stats)
            elif isinstance(layer, Activation):
                x = activation(layer.name, x, layer.slope)
            elif isinstance(layer, Dropout):
                n, shape = self.dropouts[index]
                if training and masks is not None:
                    mask = jnp.reshape(masks[:, offset:offset + n], (-1, *shape))
                    x = x * (jnp.transpose(mask, TO_NHWC) if len(shape) == 3 else mask)
                offset += n
            elif isinstance(layer, Maxout):  # Flax has no maxout layer: the spec's reshape and max
                x = jnp.max(jnp.reshape(x, (-1, info.out_shape[0], layer.pieces)), axis=2)
            elif isinstance(layer, (Reshape, Flatten)):
                if x.ndim == 4:
                    x = jnp.transpose(x, TO_NCHW)  # the neutral order before any reshape
                target = layer.shape if isinstance(layer, Reshape) else (math.prod(info.in_shape),)
                x = jnp.reshape(x, (-1, *target))
                if len(target) == 3:
                    x = jnp.transpose(x, TO_NHWC)
            else:
                x = self.units[self.positions[index]](x)
        if x.ndim == 4:
            x = jnp.reshape(jnp.transpose(x, TO_NCHW), (-1, math.prod(net.output_shape)))
        return x


def _key_names(path) -> tuple:
    return tuple(getattr(k, "key", getattr(k, "idx", getattr(k, "name", None))) for k in path)


class Model:
    """A spec Network as arrays: the NNX module's graph and its current ``params`` and ``stats``, lists in the
    neutral order (common/spec.py Network.parameters / statistics), params in Flax's layouts. ``apply`` is pure
    (jax.grad and jax.jit trace it); calling the model runs ``apply`` on the current values and keeps the statistics
    a training pass leaves (unless ``update_stats`` is False)."""

    def __init__(self, network: Network, dtype: str = "float32", name: str = "net"):
        self.network, self.name = network, name
        self.dtype = DTYPES[dtype]
        module = Net(network, self.dtype)
        self.graphdef, params, stats = nnx.split(module, nnx.Param, nnx.BatchStat)
        self.layouts = [kind for _, kind, _ in network.parameters()]
        # where each neutral parameter / statistic sits among the leaves of Flax's state (sorted by path)
        p_paths = [_key_names(path) for path, _ in jax.tree_util.tree_flatten_with_path(params)[0]]
        s_paths = [_key_names(path) for path, _ in jax.tree_util.tree_flatten_with_path(stats)[0]]
        self._p_tree, self._s_tree = jax.tree.structure(params), jax.tree.structure(stats)
        p_order, s_order = [], []
        for index, info in enumerate(network.layer_info):
            position, layer = module.positions[index], info.layer
            if isinstance(layer, (Dense, Conv2D, ConvTranspose2D)):
                names = ["kernel", "bias"] if layer.bias else ["kernel"]
            elif isinstance(layer, BatchNorm):
                names = ["scale", "bias"] if layer.affine else []
                s_order += [s_paths.index(("units", position, n, "value")) for n in ("mean", "var")]
            else:
                names = []
            p_order += [p_paths.index(("units", position, n, "value")) for n in names]
        if sorted(p_order) != list(range(len(p_paths))) or sorted(s_order) != list(range(len(s_paths))):
            raise AssertionError(f"{name}: Flax's state does not match the spec's parameter list")
        self._p_order, self._s_order = p_order, s_order
        self.params = [leaf for leaf in _in_order(jax.tree.leaves(params), p_order)]
        self.stats = [leaf for leaf in _in_order(jax.tree.leaves(stats), s_order)]

    def apply(self, params, stats, x, training: bool = False, masks=None, update_stats: bool = True):
        """(output, statistics after the pass): a pure function of its arguments."""
        module = nnx.merge(self.graphdef, jax.tree.unflatten(self._p_tree, _from_order(params, self._p_order)),
                           jax.tree.unflatten(self._s_tree, _from_order(stats, self._s_order)))
        out = module(x, training, masks, update_stats)
        if not (training and update_stats) or not stats:
            return out, list(stats)
        return out, _in_order(jax.tree.leaves(nnx.state(module, nnx.BatchStat)), self._s_order)

    def __call__(self, x, training: bool = False, masks=None, update_stats: bool = True):
        out, self.stats = self.apply(self.params, self.stats, x, training, masks, update_stats)
        return out


def _in_order(leaves, order):
    return [leaves[i] for i in order]


def _from_order(values, order):
    leaves = [None] * len(order)
    for value, i in zip(values, order):
        leaves[i] = value
    return leaves


def build_generator(spec: GAN) -> Model:
    """G applies its output activation."""
    return Model(spec.generator_network, spec.dtype, "generator")


def build_discriminator(spec: GAN) -> Model:
    """D outputs logits: a sigmoid output is fused into the loss (losses.py)."""
    return Model(spec.discriminator_network, spec.dtype, "discriminator")


def _swap(value, kind: str):
    return value.swapaxes(2, 3) if kind == "conv_transpose_kernel" else value  # Flax (kh, kw, out, in)


def to_neutral(arrays, layouts) -> list[np.ndarray]:
    """Numpy copies of per-weight arrays (weights, optimiser moments) in the neutral layout, in their own dtype."""
    return [np.array(_swap(np.asarray(a), kind)) for a, kind in zip(arrays, layouts, strict=True)]


def from_neutral(arrays, like, layouts, device=None) -> list[jax.Array]:
    """Arrays shaped and typed like ``like`` (Flax's layouts) from neutral ones, on ``device``."""
    if len(arrays) != len(like):
        raise ValueError(f"{len(arrays)} arrays given, expected {len(like)}")
    out = []
    for index, (value, target, kind) in enumerate(zip(arrays, like, layouts)):
        value = _swap(np.asarray(value, dtype=target.dtype), kind)  # the swap is its own inverse
        if tuple(value.shape) != tuple(target.shape):
            raise ValueError(f"array {index} has shape {np.shape(arrays[index])}, "
                             f"expected {tuple(_swap(np.empty(target.shape), kind).shape)}")
        out.append(jax.device_put(np.ascontiguousarray(value), device))
    return out


def load_weights(model: Model, weights: list[np.ndarray], device=None) -> None:
    """Set a model from its neutral weight list (common/init.py's layout)."""
    model.params = from_neutral(weights, model.params, model.layouts, device or _device(model.params))


def export_weights(model: Model) -> list[np.ndarray]:
    """The neutral weight list of a model's current weights (copies in the model's dtype)."""
    return to_neutral(model.params, model.layouts)


def export_statistics(model: Model) -> list[np.ndarray]:
    return [np.array(s) for s in model.stats]


def load_statistics(model: Model, arrays: list[np.ndarray]) -> None:
    if len(arrays) != len(model.stats):
        raise ValueError(f"{model.name}: {len(arrays)} statistics given, the model has {len(model.stats)}")
    model.stats = from_neutral(arrays, model.stats, ["vector"] * len(arrays), _device(model.stats))


def _device(arrays):
    """The device the model's arrays live on (None: JAX's default)."""
    for a in arrays:
        devices = getattr(a, "devices", None)
        if devices is not None:
            return next(iter(devices()))
    return None
