"""Initial weights in numpy, in one neutral layout, so both backends start from identical numbers.

Layout (common/spec.py's layer-list comment): for each network a flat list of its trainable weights, layer by
layer: kernel then bias (Dense kernels (in, out), the Keras layout that PyTorch's Linear stores transposed;
convolution kernels (kh, kw, in, out)), gamma then beta for an affine BatchNorm; values in the spec's dtype
(``GAN.dtype``, float32 by default). An MLP is
``[kernel0, bias0, kernel1, bias1, ...]``. BatchNorm's running statistics start at mean 0, variance 1
(``init_statistics``) in both frameworks.

Schemes, drawn layer by layer in that order from one rng (an MLP's draws are the same with every scheme's code):
* ``torch_default``: what the PyTorch layers' ``reset_parameters`` draw. Linear and Conv2d: kaiming_uniform_(a=√5),
  which is U(±1/√fan_in), and the bias from the same bound, with fan_in = in · kh · kw
  (torch.nn.init._calculate_fan_in_and_fan_out reads weight.size(1) times the receptive field). ConvTranspose2d
  stores its weight (in, out, kh, kw), so the same function gives it fan_in = OUT · kh · kw: PyTorch's default for
  a transposed convolution scales with its output channels (torch/nn/modules/conv.py, _ConvNd.reset_parameters).
  BatchNorm: gamma 1, beta 0.
* ``glorot_uniform``: Keras' layer defaults: kernels U(±√(6 / (fan_in + fan_out))) with fan_in = in · kh · kw and
  fan_out = out · kh · kw (keras/src/initializers/random_initializers.py compute_fans; for Conv2DTranspose, whose
  kernel is (kh, kw, out, in), the two swap, which leaves the sum alone), zero biases; BatchNorm gamma 1, beta 0.
* ``dcgan``: PyTorch's DCGAN example (examples/dcgan/main.py l.117-123, weights_init): every Conv/ConvTranspose
  kernel N(0, 0.02), BatchNorm gamma N(1, 0.02) and beta 0; what weights_init leaves alone keeps torch_default
  (a Linear layer, a convolution's bias).
* ``normal_0.02``: the PacGAN code's (Blocks): every Dense and convolution kernel N(0, 0.02), every bias 0
  (IsotropicGaussian(0.02), Constant(0): 2DGrid_GAN&PacGAN/config.py l.21-22, pacgan_task.py l.67-68, 92), and
  BatchNorm gamma 1, beta 0 (Blocks' BatchNormalization initialises its scale and shift itself).
"""
from __future__ import annotations

import numpy as np

from common.spec import GAN, INIT_SCHEMES, MLP, BatchNorm, ConvTranspose2D, Network

DTYPE = np.float32  # the default dtype of weights, statistics and every step input (common/stream.py)
# float64 runs (GAN.dtype): every scheme draws in float64 (numpy's uniform and normal), and a float32 run keeps the
# draw rounded to float32. So a float64 run starts from the very draw its float32 twin rounds: the two differ by
# that rounding only, and float64 holds the scheme's distribution without a float32 grid (an upcast float32 draw
# would be float32 weights in disguise). float32 weights are bit-identical to what they were before dtypes existed.
DCGAN_STD = 0.02  # examples/dcgan/main.py l.120, 122
NORMAL_STD = 0.02  # the normal_0.02 scheme: PacGAN's weights_init_std (2DGrid_GAN&PacGAN/config.py l.21)

Weights = dict[str, list[np.ndarray]]  # {"generator": [...], "discriminator": [...]}

# How a run starts: the seed's own weights ("seed"); the chaos floor's twins ("seed+order1" to "seed+order3"): the
# same GAN with its hidden units and every batch in another order (common/twin.py: the same training, other
# summation orders at every step, as between two frameworks); or, in records written before the twins, weights
# moved by one ulp ("seed+ulp").
TWIN_INITS = ("seed+order1", "seed+order2", "seed+order3")
INITS = ("seed", "seed+ulp", *TWIN_INITS)


def init_mlp(mlp: MLP, scheme: str, rng: np.random.Generator, dtype=DTYPE) -> list[np.ndarray]:
    """Draw one MLP's weights.

    ``torch_default`` is what ``nn.Linear.reset_parameters`` does: kaiming_uniform_(a=sqrt(5)) for the
    kernel, which is U(-1/sqrt(fan_in), 1/sqrt(fan_in)), and the same bound for the bias.
    ``glorot_uniform`` is Keras' Dense default: U(-sqrt(6/(fan_in+fan_out)), +...) and zero bias.
    ``dcgan`` leaves Linear layers at torch_default.
    """
    if scheme not in INIT_SCHEMES:
        raise ValueError(f"init scheme {scheme!r} is invalid; allowed: {', '.join(INIT_SCHEMES)}")
    weights = []
    for fan_in, fan_out in mlp.layer_shapes:
        if scheme == "normal_0.02":
            kernel = rng.normal(0.0, NORMAL_STD, size=(fan_in, fan_out))
            bias = np.zeros(fan_out)
        elif scheme in ("torch_default", "dcgan"):
            bound = 1.0 / np.sqrt(fan_in)
            kernel = rng.uniform(-bound, bound, size=(fan_in, fan_out))
            bias = rng.uniform(-bound, bound, size=(fan_out,))
        else:
            limit = np.sqrt(6.0 / (fan_in + fan_out))
            kernel = rng.uniform(-limit, limit, size=(fan_in, fan_out))
            bias = np.zeros(fan_out)
        weights += [kernel.astype(dtype), bias.astype(dtype)]
    return weights


def fans(layer, kernel_shape: tuple[int, ...]) -> tuple[int, int]:
    """(fan_in, fan_out) of a neutral kernel (in, out) or (kh, kw, in, out), as PyTorch counts them."""
    *window, c_in, c_out = kernel_shape
    field = int(np.prod(window)) if window else 1
    if isinstance(layer, ConvTranspose2D):
        c_in, c_out = c_out, c_in  # torch reads size(1) of its (in, out, kh, kw) weight: the output channels
    return c_in * field, c_out * field


def init_network(net: Network, scheme: str, rng: np.random.Generator, dtype=DTYPE) -> list[np.ndarray]:
    """Draw one layer list's weights in the neutral order (Network.parameters)."""
    if scheme not in INIT_SCHEMES:
        raise ValueError(f"init scheme {scheme!r} is invalid; allowed: {', '.join(INIT_SCHEMES)}")
    weights, layers = [], net.layer_info
    params = net.parameters()
    i = 0
    while i < len(params):
        index, kind, shape = params[i]
        layer = layers[index].layer
        if isinstance(layer, BatchNorm):  # gamma, beta
            gamma = rng.normal(1.0, DCGAN_STD, shape) if scheme == "dcgan" else np.ones(shape)
            weights += [gamma.astype(dtype), np.zeros(shape, dtype)]
            i += 2
            continue
        has_bias = layer.bias
        fan_in, fan_out = fans(layer, shape)
        bound = 1.0 / np.sqrt(fan_in)
        if scheme == "glorot_uniform":
            limit = np.sqrt(6.0 / (fan_in + fan_out))
            kernel = rng.uniform(-limit, limit, size=shape)
        elif scheme == "dcgan" and kind != "dense_kernel":
            kernel = rng.normal(0.0, DCGAN_STD, size=shape)
        elif scheme == "normal_0.02":
            kernel = rng.normal(0.0, NORMAL_STD, size=shape)
        else:
            kernel = rng.uniform(-bound, bound, size=shape)
        weights.append(kernel.astype(dtype))
        if has_bias:
            bias_shape = params[i + 1][2]
            bias = np.zeros(bias_shape) if scheme in ("glorot_uniform", "normal_0.02") else \
                rng.uniform(-bound, bound, size=bias_shape)
            weights.append(bias.astype(dtype))
        i += 2 if has_bias else 1
    return weights


def init_net(net: MLP | Network, scheme: str, rng: np.random.Generator, dtype=DTYPE) -> list[np.ndarray]:
    return init_mlp(net, scheme, rng, dtype) if isinstance(net, MLP) else init_network(net, scheme, rng, dtype)


def init_weights(spec: GAN, seed: int) -> Weights:
    """Both networks' initial weights from one seed (generator first, then discriminator)."""
    rng = np.random.default_rng([seed, 0x1A17])  # a stream of its own, apart from the data stream
    return {
        "generator": init_net(spec.generator, spec.init, rng, spec.dtype),
        "discriminator": init_net(spec.discriminator, spec.init, rng, spec.dtype),
    }


def init_statistics(spec: GAN) -> Weights:
    """Every BatchNorm's running mean (zeros) and variance (ones), per network, in Network.statistics' order."""
    out = {}
    for name, net in (("generator", spec.generator_network), ("discriminator", spec.discriminator_network)):
        out[name] = [np.zeros(shape, spec.dtype) if j % 2 == 0 else np.ones(shape, spec.dtype)
                     for j, (_, shape) in enumerate(net.statistics())]
    return out


def nudge_ulp(weights: Weights) -> Weights:
    """Every weight moved one unit in the last place of its own dtype towards +inf (np.nextafter): the smallest
    change the run's precision can make to every coordinate at once, so the twin run measures how fast training
    amplifies rounding."""
    return {net: [np.nextafter(w, np.asarray(np.inf, w.dtype)).astype(w.dtype) for w in arrays]
            for net, arrays in weights.items()}


def initial_weights(spec: GAN, seed: int, init: str = "seed") -> Weights:
    """The run's initial weights: ``init_weights`` of the seed, nudged by one ulp for ``init="seed+ulp"`` (a twin
    holds them in its own unit order: common/twin.py Twin.weights)."""
    if init not in INITS:
        raise ValueError(f"init {init!r} is invalid; allowed: {', '.join(INITS)}")
    weights = init_weights(spec, seed)
    return nudge_ulp(weights) if init == "seed+ulp" else weights
