"""The framework-neutral GAN spec: plain frozen dataclasses, validated on construction.

Every backend builds exactly what a spec says; nothing here knows about torch or TensorFlow.
A bad value raises one ``ValueError`` that names the field and the allowed values.

Update semantics (``Updates``), which the seeds and their ports disagree on, are explicit:

* ``order="d_then_g"``: ``d_steps`` discriminator updates, then one generator update (seeds 002/003/004).
* ``order="g_then_d"``: one generator update, then ``d_steps`` discriminator updates (seed 000).
* ``order="simultaneous"``: both gradients taken at the same weights on one fake batch, then both
  applied (the TensorFlow port of seed 000's parabola toy). Needs ``d_steps == 1``.

``reuse_fake`` says whether the generator's update and the discriminator update next to it share one
noise draw (seed 000: D is trained on the very fake batch G was just trained on, produced before G's update).
Noise for a step is always drawn as ``d_steps + 1`` batches: ``noise[k]`` feeds D step ``k`` and
``noise[d_steps]`` feeds G; with ``reuse_fake`` G uses the noise of the adjacent D step instead and
``noise[d_steps]`` is drawn but unused, so the random stream is the same whatever the flag.

Networks are layer lists (``Network``; an ``MLP`` expands to Dense + Activation layers). Two kinds of layer make
the count of forward passes part of the semantics, and both are fixed here, the same in every backend:

* BatchNorm: every training-mode forward pass normalises with its own batch statistics; the running statistics
  are updated by every training-mode pass *except a recomputation*: a pass the schedule runs again on the same
  weights and inputs only because a framework needs the graph once more. There are two: with
  ``d_then_g``/``reuse_fake``, G's forward inside G's update recomputes the fake batch of the last D update
  (PyTorch's DCGAN example runs G once per step and back-propagates through that fake,
  examples/dcgan/main.py l.241, 255); with ``simultaneous``/``reuse_fake``, D's pass on the fake batch inside G's
  update is the very pass D's update makes (TensorFlow's DCGAN tutorial uses one ``fake_output`` for both losses,
  dcgan.ipynb cell 38 l.9-12), so only D's update moves the statistics, after its pass on the real batch.
  D's pass on the WGAN-GP interpolates is a training-mode pass like any other. ``generate`` and ``discriminate``
  run in evaluation mode: running statistics, no dropout, no update.
* Dropout: every training-mode D pass gets its own mask, an input like the noise (``common.stream``), shaped
  (dropout_passes, batch, dropout_units): for D update k the pass on real[k] takes mask ``k*q``, the pass on its
  fake batch ``k*q + 1`` and, for wgan-gp (q = 3, else q = 2), the pass on the interpolates ``k*q + 2``; G's
  update takes the last, ``d_steps*q``, except with ``simultaneous``/``reuse_fake``, where it shares the fake
  pass's mask (it is the same pass) and the last is drawn but unused. G has no Dropout.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

ACTIVATIONS = ("relu", "leaky_relu", "tanh", "sigmoid", "linear")
NOISES = ("normal", "uniform")
# Losses whose D output is a probability (sigmoid) that the backends fuse into the loss, from logits.
SIGMOID_LOSSES = ("minimax", "nonsaturating")
# Losses whose D is a critic with a linear output.
CRITIC_LOSSES = ("wasserstein", "wgan-gp", "hinge", "least-squares")
LOSSES = SIGMOID_LOSSES + CRITIC_LOSSES
OPTIMIZERS = ("adam", "rmsprop")
# spec: the suite's own formulas, identical in both backends. native: the framework's own optimiser as users run
# it by default. native-foreach / native-fused: torch.optim's foreach=True / fused=True kernels (PyTorch only:
# Keras has one implementation of each optimiser; a backend lists what it supports in OPTIMIZER_IMPLEMENTATIONS).
IMPLEMENTATIONS = ("spec", "native", "native-foreach", "native-fused")
# Where the spec Adam adds epsilon: PyTorch's form (to the bias-corrected sqrt(v_hat)) or Keras' (to the raw sqrt(v),
# the TF tutorial's and Blocks' form), equal to PyTorch's with eps / sqrt(1 - beta2^t) in its place.
EPS_FORMS = ("torch", "keras")
ORDERS = ("d_then_g", "g_then_d", "simultaneous")
# torch_default: what nn.Linear/Conv2d/ConvTranspose2d draw; glorot_uniform: Keras' layer defaults; dcgan:
# PyTorch's DCGAN example (N(0, 0.02) convolutions, BatchNorm gamma N(1, 0.02)). Details: common/init.py.
# normal_0.02: every Dense/convolution kernel N(0, 0.02), biases 0, BatchNorm gamma 1 and beta 0 (Blocks'
# IsotropicGaussian(0.02) and Constant(0), as the PacGAN code initialises its nets: the -pacgan tasks).
INIT_SCHEMES = ("torch_default", "glorot_uniform", "dcgan", "normal_0.02")
# The floating-point type of every weight, statistic, optimiser moment and step input of a run, in both backends
# (torch.float64 / Keras layers with dtype "float64"). float64 is the strong parity proof: the two frameworks'
# rounding differences shrink by 2^-29 against float32's, so whatever remains beyond that is a difference of the
# function computed (common/tolerances.py FLOAT64_*). Which modes refuse it: each backend's check_supported reasons.
DTYPES = ("float32", "float64")
# WGAN-GP's gradient norm is sqrt(sum(g^2) + GP_NORM_EPS) in both backends: finite gradient at g = 0,
# where torch's norm gives 0 and tf.norm gives NaN.
GP_NORM_EPS = 1e-12


def _fail(owner: str, name: str, value, allowed: str) -> None:
    raise ValueError(f"{owner}.{name}={value!r} is invalid; allowed: {allowed}")


def _check_choice(owner: str, name: str, value, choices) -> None:
    if value not in choices:
        _fail(owner, name, value, ", ".join(map(str, choices)))


def check_positive_int(label: str, value) -> None:
    """ValueError "<label>=<value> is invalid; allowed: an integer > 0" unless it is one (the one such check:
    the spec's fields, common/tasks.py's overrides and the command lines' types use it)."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{label}={value!r} is invalid; allowed: an integer > 0")


def check_positive_float(label: str, value) -> None:
    """ValueError unless ``value`` is a finite number > 0 (see check_positive_int)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{label}={value!r} is invalid; allowed: a finite number > 0")


def _check_positive_int(owner: str, name: str, value) -> None:
    check_positive_int(f"{owner}.{name}", value)


def _check_positive_float(owner: str, name: str, value) -> None:
    check_positive_float(f"{owner}.{name}", value)


# ---- the layer list: networks as framework-neutral layers ---------------------------------------------------
#
# Layout, the one the backends convert from at their edge (backend_*/models.py):
# * activations are NCHW per batch: an example is (C, H, W) for images, (F,) for flat vectors; data cross the
#   trainer interface flat, prod(data_shape) floats in C, H, W order (what Flatten gives), and a network whose
#   input_shape is (C, H, W) sees them reshaped to it;
# * kernels are (in, out) for Dense and (kh, kw, in, out) for Conv2D and ConvTranspose2D alike, "in" being the
#   layer's input channels (PyTorch stores Conv2d (out, in, kh, kw) and ConvTranspose2d (in, out, kh, kw); Keras
#   Conv2D (kh, kw, in, out) and Conv2DTranspose (kh, kw, out, in));
# * a network's weights are listed layer by layer: kernel then bias (Dense, convolutions), gamma then beta
#   (BatchNorm with affine); BatchNorm's running mean and variance are its statistics, listed apart.
#
# Padding is resolved to explicit numbers per side, (top, bottom, left, right), once, here (Network.layer_info):
# * Conv2D padding p (int or (ph, pw)) pads p on both sides, as PyTorch's Conv2d; "valid" pads nothing;
#   "same" is TensorFlow's: out = ceil(in / stride), total = max((out - 1) * stride + k - in, 0), and the odd
#   pixel goes to the END (bottom / right): top = total // 2, bottom = total - top. For k = 5, stride 2 on 28
#   pixels that is (1, 2); PyTorch's own padding="same" exists for stride 1 only (and splits the same way).
# * ConvTranspose2D crops its full output, (in - 1) * stride + k, per side. Padding p with output_padding op is
#   PyTorch's ConvTranspose2d: crop p at the top, p - op at the bottom, so out = (in - 1) * stride + k - 2p + op;
#   "same" is TensorFlow's conv2d_transpose: out = in * stride, total crop k - stride, top = total // 2 and the
#   odd pixel cropped at the END. For k = 5, stride 2 that is (1, 2): PyTorch's padding/output_padding can only
#   crop more at the top (p >= p - op), so the torch backend crops the remainder itself. "valid" crops nothing.
LAYOUT_KINDS = ("dense_kernel", "conv_kernel", "conv_transpose_kernel", "vector")
RUNNING_VARIANCES = ("unbiased", "biased")


def _pair(owner: str, name: str, value) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, int) and not isinstance(value, bool) else tuple(value) \
        if isinstance(value, (tuple, list)) else None
    if pair is None or len(pair) != 2 or any(isinstance(v, bool) or not isinstance(v, int) for v in pair):
        _fail(owner, name, value, "an integer or a pair of integers")
    return pair


def _padding(owner: str, value) -> tuple[int, int] | str:
    if isinstance(value, str):
        _check_choice(owner, "padding", value, ("same", "valid"))
        return value
    pair = _pair(owner, "padding", value)
    if min(pair) < 0:
        _fail(owner, "padding", value, "integers >= 0, 'same' or 'valid'")
    return pair


@dataclass(frozen=True)
class Dense:
    """A fully connected layer on a flat (F,) input: kernel (F, units), then a bias if ``bias``."""

    units: int
    bias: bool = True

    def __post_init__(self):
        _check_positive_int("Dense", "units", self.units)
        _check_choice("Dense", "bias", self.bias, (True, False))


@dataclass(frozen=True)
class Conv2D:
    """Cross-correlation on (C, H, W), no dilation, no groups; padding as the module comment says."""

    filters: int
    kernel: int | tuple[int, int]
    stride: int | tuple[int, int] = 1
    padding: int | tuple[int, int] | str = 0
    bias: bool = True

    def __post_init__(self):
        _check_positive_int("Conv2D", "filters", self.filters)
        for name in ("kernel", "stride"):
            object.__setattr__(self, name, _pair("Conv2D", name, getattr(self, name)))
            if min(getattr(self, name)) < 1:
                _fail("Conv2D", name, getattr(self, name), "integers >= 1")
        object.__setattr__(self, "padding", _padding("Conv2D", self.padding))
        _check_choice("Conv2D", "bias", self.bias, (True, False))


@dataclass(frozen=True)
class ConvTranspose2D:
    """The transpose (gradient) of a Conv2D, on (C, H, W); cropping as the module comment says."""

    filters: int
    kernel: int | tuple[int, int]
    stride: int | tuple[int, int] = 1
    padding: int | tuple[int, int] | str = 0
    output_padding: int | tuple[int, int] = 0
    bias: bool = True

    def __post_init__(self):
        _check_positive_int("ConvTranspose2D", "filters", self.filters)
        for name in ("kernel", "stride", "output_padding"):
            object.__setattr__(self, name, _pair("ConvTranspose2D", name, getattr(self, name)))
        if min(self.kernel) < 1 or min(self.stride) < 1:
            _fail("ConvTranspose2D", "kernel/stride", (self.kernel, self.stride), "integers >= 1")
        object.__setattr__(self, "padding", _padding("ConvTranspose2D", self.padding))
        op = self.output_padding
        if isinstance(self.padding, str):
            if op != (0, 0):
                _fail("ConvTranspose2D", "output_padding", op, f"0 with padding={self.padding!r}")
        elif any(not 0 <= o < s or o > p for o, s, p in zip(op, self.stride, self.padding)):
            _fail("ConvTranspose2D", "output_padding", op, "0 <= output_padding < stride and <= padding")
        _check_choice("ConvTranspose2D", "bias", self.bias, (True, False))


@dataclass(frozen=True)
class BatchNorm:
    """Batch normalisation over every axis but the channels (BatchNorm2d on (C, H, W), BatchNorm1d on (F,)).

    Training passes normalise with the batch's own mean and biased variance (both frameworks do); evaluation
    passes (``generate``, ``discriminate``) with the running statistics. Each training pass that updates them
    (common/trainer.py says which) does, in ONE convention, PyTorch's:
        running_mean = (1 - momentum) * running_mean + momentum * batch_mean
        running_var  = (1 - momentum) * running_var  + momentum * batch_var
    with batch_var unbiased (divided by n - 1, PyTorch's BatchNorm) or biased (divided by n, Keras 3's
    BatchNormalization, keras/src/layers/normalization/batch_normalization.py l.385-390 with tf.nn.moments).
    Keras' ``momentum`` is 1 - this one: its default 0.99 is momentum=0.01 here. Running statistics start at
    mean 0, variance 1 in both frameworks.
    """

    momentum: float = 0.1
    eps: float = 1e-5
    affine: bool = True
    running_variance: str = "unbiased"

    def __post_init__(self):
        if isinstance(self.momentum, bool) or not isinstance(self.momentum, (int, float)) \
                or not 0 <= self.momentum <= 1:
            _fail("BatchNorm", "momentum", self.momentum, "a number in [0, 1]")
        _check_positive_float("BatchNorm", "eps", self.eps)
        _check_choice("BatchNorm", "affine", self.affine, (True, False))
        _check_choice("BatchNorm", "running_variance", self.running_variance, RUNNING_VARIANCES)


@dataclass(frozen=True)
class Activation:
    """An elementwise activation; ``slope`` is leaky_relu's (PyTorch's default is 0.01, Keras' layer 0.3)."""

    name: str
    slope: float = 0.2

    def __post_init__(self):
        _check_choice("Activation", "name", self.name, ACTIVATIONS)
        if isinstance(self.slope, bool) or not isinstance(self.slope, (int, float)) or not 0 <= self.slope < 1:
            _fail("Activation", "slope", self.slope, "a number in [0, 1)")


@dataclass(frozen=True)
class Dropout:
    """Inverted dropout: in training each unit is kept with probability 1 - rate and scaled by 1 / (1 - rate)
    (both frameworks' convention); in evaluation the identity. The masks are inputs (common/stream.py)."""

    rate: float

    def __post_init__(self):
        if isinstance(self.rate, bool) or not isinstance(self.rate, (int, float)) or not 0 <= self.rate < 1:
            _fail("Dropout", "rate", self.rate, "a number in [0, 1)")

    @property
    def scale(self) -> float:
        """What a kept unit is multiplied by: 1 / (1 - rate), rounded once to float32 by the stream."""
        return 1.0 / (1.0 - self.rate)


@dataclass(frozen=True)
class Reshape:
    """A view of the example as ``shape`` in NCHW order (the TF backend transposes to and from NHWC)."""

    shape: tuple[int, ...]

    def __post_init__(self):
        object.__setattr__(self, "shape", tuple(self.shape))
        if not 1 <= len(self.shape) <= 3:
            _fail("Reshape", "shape", self.shape, "(F,), or (C, H, W)")
        for size in self.shape:
            _check_positive_int("Reshape", "shape", size)


@dataclass(frozen=True)
class Maxout:
    """Maxout over groups of ``pieces`` consecutive features of a flat (F,) input, F a multiple of ``pieces``:
    out[i] = max(x[i * pieces], ..., x[i * pieces + pieces - 1]), F / pieces outputs. Dense(u * p) then Maxout(p)
    is Blocks' LinearMaxout(output_dim=u, num_pieces=p) (blocks/bricks/simple.py Maxout: reshape the last axis
    to (u, p), max over p), the PacGAN discriminator's layer. No weights; at a tie the gradient is split evenly
    (torch.amax and tf.reduce_max alike)."""

    pieces: int

    def __post_init__(self):
        _check_positive_int("Maxout", "pieces", self.pieces)


@dataclass(frozen=True)
class Flatten:
    """(C, H, W) -> (C * H * W,) in C, H, W order (the neutral layout's, PyTorch's flatten order)."""


LAYERS = (Dense, Conv2D, ConvTranspose2D, BatchNorm, Activation, Dropout, Reshape, Flatten, Maxout)
_LAYERS_BY_NAME = {cls.__name__: cls for cls in LAYERS}


@dataclass(frozen=True)
class LayerInfo:
    """One layer with its shapes resolved: ``pads`` is (top, bottom, left, right): Conv2D's zero padding, or
    ConvTranspose2D's crop of its full output; None for other layers."""

    layer: object
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    pads: tuple[int, int, int, int] | None = None


def conv_pads(layer, size: tuple[int, int], padding=None) -> tuple[int, int, int, int] | None:
    """(top, bottom, left, right) that a Conv2D pads, or a ConvTranspose2D crops, on an (H, W) input, for
    ``padding`` (default: the layer's own; "same", "valid" or a pair). None where "same" has no meaning (a
    transposed kernel smaller than its stride)."""
    padding = layer.padding if padding is None else padding
    pads = []
    for i, (n, k, s) in enumerate(zip(size, layer.kernel, layer.stride)):
        if padding == "valid":
            before = after = 0
        elif padding == "same" and isinstance(layer, Conv2D):
            total = max((-(-n // s) - 1) * s + k - n, 0)
            before, after = total // 2, total - total // 2
        elif padding == "same":
            if k < s:
                return None
            before, after = (k - s) // 2, (k - s) - (k - s) // 2
        elif isinstance(layer, Conv2D):
            before = after = padding[i]
        else:
            before, after = padding[i], padding[i] - layer.output_padding[i]
        pads += [before, after]
    return tuple(pads)


def _conv_out(owner: str, index: int, layer, shape) -> LayerInfo:
    if len(shape) != 3:
        _fail(owner, f"layers[{index}]", type(layer).__name__, f"a (C, H, W) input, got {shape}: add a Reshape")
    pads = conv_pads(layer, shape[1:])
    if pads is None:
        _fail(owner, f"layers[{index}].padding", "same", f"a kernel >= stride, got {layer.kernel}, {layer.stride}")
    out = []
    for n, k, s, before, after in zip(shape[1:], layer.kernel, layer.stride, pads[0::2], pads[1::2]):
        if isinstance(layer, Conv2D):
            out.append((n + before + after - k) // s + 1)
        else:
            out.append((n - 1) * s + k - before - after)
    if min(out) < 1:
        _fail(owner, f"layers[{index}]", type(layer).__name__, f"an output of at least 1 pixel; input {shape}")
    return LayerInfo(layer, tuple(shape), (layer.filters, *out), pads)


@dataclass(frozen=True)
class Network:
    """A feed-forward network: ``layers`` applied in order to examples of ``input_shape`` (NCHW, see above).

    Validated on construction: every layer must fit the shape it receives (one ValueError naming the layer).
    """

    input_shape: tuple[int, ...]
    layers: tuple

    def __post_init__(self):
        object.__setattr__(self, "input_shape", tuple(self.input_shape))
        object.__setattr__(self, "layers", tuple(self.layers))
        if not 1 <= len(self.input_shape) <= 3 or len(self.input_shape) == 2:
            _fail("Network", "input_shape", self.input_shape, "(F,) or (C, H, W)")
        for size in self.input_shape:
            _check_positive_int("Network", "input_shape", size)
        for index, layer in enumerate(self.layers):
            if not isinstance(layer, LAYERS):
                _fail("Network", f"layers[{index}]", layer, ", ".join(cls.__name__ for cls in LAYERS))
        object.__setattr__(self, "_info", self._resolve())

    def _resolve(self) -> tuple[LayerInfo, ...]:
        infos, shape = [], self.input_shape
        for index, layer in enumerate(self.layers):
            where = f"layers[{index}]"
            if isinstance(layer, Dense):
                if len(shape) != 1:
                    _fail("Network", where, "Dense", f"a flat (F,) input, got {shape}: add a Flatten")
                info = LayerInfo(layer, shape, (layer.units,))
            elif isinstance(layer, (Conv2D, ConvTranspose2D)):
                info = _conv_out("Network", index, layer, shape)
            elif isinstance(layer, Reshape):
                if math.prod(layer.shape) != math.prod(shape):
                    _fail("Network", f"{where}.shape", layer.shape, f"{math.prod(shape)} units, as its input {shape}")
                info = LayerInfo(layer, shape, layer.shape)
            elif isinstance(layer, Flatten):
                info = LayerInfo(layer, shape, (math.prod(shape),))
            elif isinstance(layer, Maxout):
                if len(shape) != 1 or shape[0] % layer.pieces:
                    _fail("Network", where, f"Maxout({layer.pieces})", f"a flat input of a multiple of {layer.pieces} "
                          f"features, got {shape}")
                info = LayerInfo(layer, shape, (shape[0] // layer.pieces,))
            else:  # BatchNorm, Activation, Dropout keep the shape
                info = LayerInfo(layer, shape, shape)
            infos.append(info)
            shape = info.out_shape
        return tuple(infos)

    @property
    def layer_info(self) -> tuple[LayerInfo, ...]:
        return self._info

    @property
    def output_shape(self) -> tuple[int, ...]:
        return self._info[-1].out_shape if self._info else self.input_shape

    def parameters(self) -> list[tuple[int, str, tuple[int, ...]]]:
        """(layer index, layout kind, neutral shape) of every trainable weight, in the neutral order."""
        out = []
        for index, info in enumerate(self._info):
            layer = info.layer
            if isinstance(layer, Dense):
                out.append((index, "dense_kernel", (info.in_shape[0], layer.units)))
            elif isinstance(layer, (Conv2D, ConvTranspose2D)):
                kind = "conv_kernel" if isinstance(layer, Conv2D) else "conv_transpose_kernel"
                out.append((index, kind, (*layer.kernel, info.in_shape[0], layer.filters)))
            elif isinstance(layer, BatchNorm) and layer.affine:
                out += [(index, "vector", (info.in_shape[0],))] * 2  # gamma, beta
            if isinstance(layer, (Dense, Conv2D, ConvTranspose2D)) and layer.bias:
                out.append((index, "vector", (info.out_shape[0],)))
        return out

    def statistics(self) -> list[tuple[int, tuple[int]]]:
        """(layer index, (channels,)) of every BatchNorm's running mean, then running variance, in order."""
        return [(i, (info.in_shape[0],)) for i, info in enumerate(self._info) if isinstance(info.layer, BatchNorm)
                for _ in range(2)]

    def dropout_layers(self) -> list[tuple[int, tuple[int, ...]]]:
        """(layer index, activation shape) of every Dropout; its mask is (batch, *shape) (common/stream.py)."""
        return [(i, info.in_shape) for i, info in enumerate(self._info) if isinstance(info.layer, Dropout)]

    @property
    def dropout_units(self) -> int:
        """Units one example's masks hold, all Dropout layers together (the last axis of a step's masks)."""
        return sum(math.prod(shape) for _, shape in self.dropout_layers())

    @property
    def parameter_count(self) -> int:
        return sum(math.prod(shape) for _, _, shape in self.parameters())

    def network(self, logits: bool = False) -> "Network":
        return self

    def to_dict(self) -> dict:
        return {"input_shape": list(self.input_shape),
                "layers": [{"type": type(layer).__name__, **dataclasses.asdict(layer)} for layer in self.layers]}

    @classmethod
    def from_dict(cls, d: dict) -> "Network":
        layers = []
        for item in d["layers"]:
            item = dict(item)
            kind = item.pop("type")
            if kind not in _LAYERS_BY_NAME:
                _fail("Network", "layers.type", kind, ", ".join(_LAYERS_BY_NAME))
            fields = {k: tuple(v) if isinstance(v, list) else v for k, v in item.items()}
            layers.append(_LAYERS_BY_NAME[kind](**fields))
        return cls(tuple(d["input_shape"]), tuple(layers))


@dataclass(frozen=True)
class MLP:
    """A fully connected net: ``sizes = (input, hidden..., output)``."""

    sizes: tuple[int, ...]
    hidden_activation: str = "relu"
    output_activation: str = "linear"
    leaky_slope: float = 0.2  # used only by leaky_relu; PyTorch's default is 0.01, Keras' layer 0.3

    def __post_init__(self):
        object.__setattr__(self, "sizes", tuple(self.sizes))
        if len(self.sizes) < 2:
            _fail("MLP", "sizes", self.sizes, "at least (input, output)")
        for size in self.sizes:
            _check_positive_int("MLP", "sizes", size)
        _check_choice("MLP", "hidden_activation", self.hidden_activation, ACTIVATIONS)
        _check_choice("MLP", "output_activation", self.output_activation, ACTIVATIONS)
        if not (isinstance(self.leaky_slope, (int, float)) and 0 <= self.leaky_slope < 1):
            _fail("MLP", "leaky_slope", self.leaky_slope, "a number in [0, 1)")

    @property
    def layer_shapes(self) -> list[tuple[int, int]]:
        """(fan_in, fan_out) of each Linear/Dense layer, in order."""
        return list(zip(self.sizes[:-1], self.sizes[1:]))

    def network(self, logits: bool = False) -> Network:
        """The same net as a layer list: Dense, then its activation (none for "linear"), layer by layer;
        ``logits=True`` leaves the output activation out (D's sigmoid lives in the loss)."""
        layers = []
        last = len(self.layer_shapes) - 1
        for index, (_, fan_out) in enumerate(self.layer_shapes):
            layers.append(Dense(fan_out))
            activation = self.output_activation if index == last else self.hidden_activation
            if index == last and logits:
                activation = "linear"
            if activation != "linear":
                layers.append(Activation(activation, self.leaky_slope))
        return Network((self.sizes[0],), tuple(layers))

    @property
    def parameter_count(self) -> int:
        return sum(i * o + o for i, o in self.layer_shapes)


@dataclass(frozen=True)
class Loss:
    name: str = "nonsaturating"
    clip: float = 0.01  # wasserstein: D weights clipped to [-clip, clip] after each D update (WGAN paper)
    gp_weight: float = 10.0  # wgan-gp: lambda (WGAN-GP paper)
    d_average: bool = False  # D loss = (real + fake) / 2 instead of real + fake (seed 002)

    def __post_init__(self):
        _check_choice("Loss", "name", self.name, LOSSES)
        _check_positive_float("Loss", "clip", self.clip)
        _check_positive_float("Loss", "gp_weight", self.gp_weight)

    @property
    def d_output(self) -> str:
        """The discriminator's output activation that this loss implies."""
        return "sigmoid" if self.name in SIGMOID_LOSSES else "linear"


# A learning rate the optimisers can hold in float32 as a normal number: a larger one overflows inside the optimiser
# (PyTorch: "value cannot be converted to type float without overflow"), a subnormal one loses its precision.
LR_RANGE = (2.0 ** -126, float.fromhex("0x1.fffffep+127"))


@dataclass(frozen=True)
class Optimizer:
    """One optimiser's exact settings.

    ``implementation="spec"``: the update below, identical in both backends (PyTorch's formulas):
      Adam:    m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;
               w -= (lr / (1 - b1^t)) * m / (sqrt(v) / sqrt(1 - b2^t) + eps_t)
               eps_t = eps (``eps_form="torch"``, PyTorch's Adam) or eps / sqrt(1 - b2^t) (``"keras"``: Keras'
               w -= lr sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps), the same update rearranged)
      RMSprop: v = alpha v + (1-alpha) g^2;  w -= lr * g / (sqrt(v) + eps)
    ``implementation="native"``: the framework's own optimiser with these numbers passed as they are
    (torch.optim.Adam/RMSprop, keras.optimizers.Adam/RMSprop): what users run; the two then differ in
    where eps goes (see docs/differences.md). ``"native-foreach"`` / ``"native-fused"``: torch.optim's
    multi-tensor and fused kernels (PyTorch only).
    """

    name: str = "adam"
    lr: float = 2e-4
    beta1: float = 0.9
    beta2: float = 0.999
    alpha: float = 0.99  # RMSprop's decay: PyTorch's alpha, Keras' rho
    eps: float = 1e-8
    implementation: str = "spec"
    eps_form: str = "torch"

    def __post_init__(self):
        _check_choice("Optimizer", "name", self.name, OPTIMIZERS)
        _check_positive_float("Optimizer", "lr", self.lr)
        for name in ("beta1", "beta2", "alpha"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
                _fail("Optimizer", name, value, "a number in [0, 1)")
        # Adam's first step multiplies by lr / (1 - beta1): that scalar must be a float32 number too
        top = LR_RANGE[1] * (1 - self.beta1) if self.name == "adam" else LR_RANGE[1]
        if not LR_RANGE[0] <= self.lr <= top:
            _fail("Optimizer", "lr", self.lr, f"a number in {LR_RANGE[0]:.3g}..{top:.3g} (float32's normal range"
                  + (", after Adam's bias correction)" if self.name == "adam" else ")"))
        _check_positive_float("Optimizer", "eps", self.eps)
        _check_choice("Optimizer", "implementation", self.implementation, IMPLEMENTATIONS)
        _check_choice("Optimizer", "eps_form", self.eps_form, EPS_FORMS)
        if self.eps_form != "torch" and self.name != "adam":
            _fail("Optimizer", "eps_form", self.eps_form, "'torch' for RMSprop (an Adam setting)")

    def eps_at(self, t: int) -> float:
        """The epsilon that update ``t`` of the spec Adam adds to the bias-corrected sqrt(v_hat) (``eps_form``)."""
        return self.eps / (1.0 - self.beta2 ** t) ** 0.5 if self.eps_form == "keras" else self.eps

    @property
    def kind(self) -> str:
        """Which optimiser class a backend builds: "native" (the framework's own), or the spec's "adam" / "rmsprop"."""
        return "native" if self.implementation.startswith("native") else self.name


@dataclass(frozen=True)
class Updates:
    order: str = "d_then_g"
    d_steps: int = 1
    reuse_fake: bool = False

    def __post_init__(self):
        _check_choice("Updates", "order", self.order, ORDERS)
        _check_positive_int("Updates", "d_steps", self.d_steps)
        if self.order == "simultaneous" and self.d_steps != 1:
            _fail("Updates", "d_steps", self.d_steps, "1 when order='simultaneous'")
        if not isinstance(self.reuse_fake, bool):
            _fail("Updates", "reuse_fake", self.reuse_fake, "True, False")

    @property
    def noise_batches(self) -> int:
        """How many noise batches one training step consumes (see the module docstring)."""
        return self.d_steps + 1


@dataclass(frozen=True)
class GAN:
    """A whole GAN. Data are flat vectors of ``prod(data_shape)`` floats in C, H, W order; a network whose input is
    (C, H, W) sees them reshaped to ``data_shape``. G and D are an ``MLP`` or a ``Network``; a Network D outputs
    D's raw value (logit or critic value): the loss applies any sigmoid."""

    latent_dim: int
    generator: MLP | Network
    discriminator: MLP | Network
    data_shape: tuple[int, ...]
    noise: str = "normal"
    loss: Loss = field(default_factory=Loss)
    d_optimizer: Optimizer = field(default_factory=Optimizer)
    g_optimizer: Optimizer = field(default_factory=Optimizer)
    batch_size: int = 64
    updates: Updates = field(default_factory=Updates)
    init: str = "torch_default"
    dtype: str = "float32"
    # PacGAN's packing (Lin et al. 2018): D judges packs of ``pack`` examples concatenated along the features, so
    # its input is pack * data_dim wide; ``batch_size`` counts packs (the paper's minibatch of 100 packs), and each
    # D or G batch holds batch_size * pack examples (``examples_per_batch``): real rows and noise rows alike. Pack
    # j is examples j*pack ... j*pack + pack - 1 of the batch (a row-major reshape to (batch_size, pack*data_dim)),
    # as the paper's code concatenates its m independent draws (pacgan/bricks.py l.67, axis=1). GP coefficients
    # and dropout masks are per pack (one per D example). pack 1 is the plain GAN, unchanged.
    pack: int = 1

    def __post_init__(self):
        object.__setattr__(self, "data_shape", tuple(self.data_shape))
        _check_choice("GAN", "dtype", self.dtype, DTYPES)
        _check_positive_int("GAN", "latent_dim", self.latent_dim)
        _check_positive_int("GAN", "batch_size", self.batch_size)
        _check_positive_int("GAN", "pack", self.pack)
        _check_choice("GAN", "noise", self.noise, NOISES)
        _check_choice("GAN", "init", self.init, INIT_SCHEMES)
        for size in self.data_shape:
            _check_positive_int("GAN", "data_shape", size)
        for name in ("generator", "discriminator"):
            if not isinstance(getattr(self, name), (MLP, Network)):
                _fail("GAN", name, type(getattr(self, name)).__name__, "an MLP or a Network")
        if isinstance(self.generator, MLP):
            if self.generator.sizes[0] != self.latent_dim:
                _fail("GAN", "generator.sizes[0]", self.generator.sizes[0], f"latent_dim = {self.latent_dim}")
            if self.generator.sizes[-1] != self.data_dim:
                _fail("GAN", "generator.sizes[-1]", self.generator.sizes[-1], f"prod(data_shape) = {self.data_dim}")
        else:
            gen = self.generator
            if gen.input_shape != (self.latent_dim,):
                _fail("GAN", "generator.input_shape", gen.input_shape, f"({self.latent_dim},), the latent_dim")
            if gen.output_shape not in (self.data_shape, (self.data_dim,)):
                _fail("GAN", "generator output shape", gen.output_shape, f"data_shape {self.data_shape} or flat")
            if gen.dropout_layers():
                _fail("GAN", "generator.layers", "Dropout", "Dropout in the discriminator only")
        if isinstance(self.discriminator, MLP):
            if self.discriminator.sizes[0] != self.d_input_dim:
                _fail("GAN", "discriminator.sizes[0]", self.discriminator.sizes[0],
                      f"pack * prod(data_shape) = {self.d_input_dim} (GAN.with_pack widens it)")
            if self.discriminator.sizes[-1] != 1:
                _fail("GAN", "discriminator.sizes[-1]", self.discriminator.sizes[-1], "1")
            if self.discriminator.output_activation != self.loss.d_output:
                _fail("GAN", "discriminator.output_activation", self.discriminator.output_activation,
                      f"{self.loss.d_output!r} for loss {self.loss.name!r} (use GAN.with_loss to switch losses)")
        else:
            disc = self.discriminator
            if self.pack > 1 and disc.input_shape != (self.d_input_dim,):
                _fail("GAN", "discriminator.input_shape", disc.input_shape,
                      f"({self.d_input_dim},): packs are flat, pack * prod(data_shape) (GAN.with_pack widens it)")
            if self.pack == 1 and disc.input_shape not in (self.data_shape, (self.data_dim,)):
                _fail("GAN", "discriminator.input_shape", disc.input_shape, f"data_shape {self.data_shape} or flat")
            if math.prod(disc.output_shape) != 1:
                _fail("GAN", "discriminator output shape", disc.output_shape, "one value per example")
            if disc.layers and isinstance(disc.layers[-1], Activation) and disc.layers[-1].name == "sigmoid":
                _fail("GAN", "discriminator.layers[-1]", "sigmoid", "no output sigmoid: the loss applies it")

    @property
    def data_dim(self) -> int:
        return math.prod(self.data_shape)

    @property
    def d_input_dim(self) -> int:
        """The width of one D example: a pack of ``pack`` flat examples."""
        return self.pack * self.data_dim

    @property
    def examples_per_batch(self) -> int:
        """Real examples in each D batch and noise rows in each G batch: ``batch_size`` packs of ``pack``."""
        return self.batch_size * self.pack

    @property
    def generator_network(self) -> Network:
        """G as a layer list, its output activation included."""
        return self.generator.network()

    @property
    def discriminator_network(self) -> Network:
        """D as a layer list that outputs the raw value (logit or critic value)."""
        return self.discriminator.network(logits=True)

    @property
    def parameter_count(self) -> int:
        return self.generator.parameter_count + self.discriminator.parameter_count

    @property
    def dropout_passes(self) -> int:
        """Masks a step consumes per example, when D has Dropout (layout in the module docstring)."""
        return self.updates.d_steps * (3 if self.loss.name == "wgan-gp" else 2) + 1

    def replace(self, **changes) -> "GAN":
        return dataclasses.replace(self, **changes)

    def with_pack(self, pack: int) -> "GAN":
        """The same GAN with D judging packs of ``pack`` examples: D's input widened to pack * data_dim (an MLP's
        first size, or a flat Network's input), every other layer as it is (the paper keeps D's widths)."""
        _check_positive_int("GAN", "pack", pack)
        disc, width = self.discriminator, pack * self.data_dim
        if isinstance(disc, MLP):
            disc = dataclasses.replace(disc, sizes=(width, *disc.sizes[1:]))
        elif len(disc.input_shape) == 1:
            disc = Network((width,), disc.layers)
        elif pack > 1:
            _fail("GAN", "pack", pack, "1 for a discriminator on images (packs are flat vectors)")
        return dataclasses.replace(self, pack=pack, discriminator=disc)

    def with_loss(self, loss: Loss) -> "GAN":
        """Switch the loss, and with it an MLP discriminator's output activation it implies."""
        if isinstance(self.discriminator, Network):
            return dataclasses.replace(self, loss=loss)
        disc = dataclasses.replace(self.discriminator, output_activation=loss.d_output)
        return dataclasses.replace(self, loss=loss, discriminator=disc)

    def to_dict(self) -> dict:
        # pack only when packed: an unpacked spec's dict (in records, checkpoints) is the plain GAN's, which older
        # records hold
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "pack" or self.pack != 1}
        for name, value in d.items():
            if isinstance(value, Network):
                d[name] = value.to_dict()
            elif dataclasses.is_dataclass(value):
                d[name] = dataclasses.asdict(value)
                if isinstance(value, Optimizer) and value.eps_form == "torch":
                    del d[name]["eps_form"]  # the default: records and checkpoints written before it read the same
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "GAN":
        """The GAN of ``to_dict()``; ValueError naming a missing section (common/specfile.py reads user files with
        key paths in its errors)."""
        d = dict(d)
        missing = [name for name in ("generator", "discriminator", "loss", "d_optimizer", "g_optimizer", "updates")
                   if name not in d]
        if missing:
            _fail("GAN", missing[0], "missing", "every section of GAN.to_dict()")
        for name in ("generator", "discriminator"):
            d[name] = Network.from_dict(d[name]) if "layers" in d[name] else MLP(**d[name])
        d["loss"] = Loss(**d["loss"])
        d["d_optimizer"] = Optimizer(**d["d_optimizer"])
        d["g_optimizer"] = Optimizer(**d["g_optimizer"])
        d["updates"] = Updates(**d["updates"])
        return cls(**d)


def dropout_pass(spec: GAN, k: int, which: str) -> int:
    """The index of the mask a D pass takes (module docstring): ``which`` is "real", "fake" or "gp" of D update k,
    or "g" for D's pass inside G's update."""
    q = 3 if spec.loss.name == "wgan-gp" else 2
    if which == "g":
        if spec.updates.order == "simultaneous" and spec.updates.reuse_fake:
            return 1
        return spec.updates.d_steps * q
    return k * q + {"real": 0, "fake": 1, "gp": 2}[which]
