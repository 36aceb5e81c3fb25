"""How far a forward pass can round away from exact arithmetic, per output coordinate: the forward tolerances.

A second pass over the same network in float64 (numpy, NCHW, neutral kernels), carrying beside each value the
spread (standard deviation) of one framework's rounding error, for the same float32 (or float64) weights and
inputs. Two frameworks may differ by ``pair_bound`` (CONFIDENCE x sqrt(2) spreads), one framework and the float64
value by ``reference_bound``. Each layer adds its own rounding and carries its input's spread on
(common/tolerances.py, the forward section, says why each rule holds):

* a sum of n terms t (Dense, Conv2D, ConvTranspose2D, a BatchNorm mean or variance): ``sum_rounding``,
  u sqrt(n (sum t^2 + (sum t)^2)), with sum t^2 from the same contraction over squares; the input's spread
  carried through the contraction over w^2;
* an elementwise function f: its steepest slope within CONFIDENCE spreads times the spread, plus FUNCTION_ULPS of
  rounding relative to |f| (``activation_bound``);
* BatchNorm: the mean's, the centred value's, the variance's and the square root's spreads composed to first
  order; Dropout scales, Maxout takes the largest of its pieces' spreads, Reshape and Flatten move them.
"""
from __future__ import annotations

import math

import numpy as np

from common.spec import (SIGMOID_LOSSES, Activation, BatchNorm, Conv2D, ConvTranspose2D, Dense, Dropout, Flatten, Maxout,
                         Network, Reshape)
from common.tolerances import CONFIDENCE, FUNCTION_ULPS, PAIR_FACTOR, ROUNDOFF


# ---- the float64 contractions (also tests/reference.py's) -------------------------------------------------------
def conv2d(x, kernel, stride, pads):
    """Cross-correlation of (B, C, H, W) with a (kh, kw, C, O) kernel, zero padding (top, bottom, left, right)."""
    top, bottom, left, right = pads
    x = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)))
    kh, kw, _, filters = kernel.shape
    sh, sw = stride
    ho, wo = (x.shape[2] - kh) // sh + 1, (x.shape[3] - kw) // sw + 1
    out = np.zeros((x.shape[0], filters, ho, wo))
    for i in range(kh):
        for j in range(kw):
            patch = x[:, :, i:i + sh * (ho - 1) + 1:sh, j:j + sw * (wo - 1) + 1:sw]
            out += np.einsum("bchw,co->bohw", patch, kernel[i, j])
    return out


def conv_transpose2d(x, kernel, stride, crops):
    """The transpose of conv2d: every input pixel adds kernel-weighted copies into the full ((H-1)s+kh) output,
    which is then cropped (top, bottom, left, right)."""
    kh, kw, _, filters = kernel.shape
    sh, sw = stride
    b, _, h, w = x.shape
    full = np.zeros((b, filters, (h - 1) * sh + kh, (w - 1) * sw + kw))
    for i in range(kh):
        for j in range(kw):
            full[:, :, i:i + sh * (h - 1) + 1:sh, j:j + sw * (w - 1) + 1:sw] += np.einsum("bchw,co->bohw", x,
                                                                                         kernel[i, j])
    top, bottom, left, right = crops
    return full[:, :, top:full.shape[2] - bottom, left:full.shape[3] - right]


def _contraction(layer, info, x, kernel):
    if isinstance(layer, Dense):
        return x @ kernel
    op = conv2d if isinstance(layer, Conv2D) else conv_transpose2d
    return op(x, kernel, layer.stride, info.pads)


def _terms(layer, info) -> int:
    """The number of products summed into one output: the reduction length n of the dot-product analysis."""
    if isinstance(layer, Dense):
        n = info.in_shape[0]
    elif isinstance(layer, Conv2D):
        n = layer.kernel[0] * layer.kernel[1] * info.in_shape[0]
    else:  # a transposed convolution's output pixel gathers ceil(k / s) taps per axis from each input channel
        n = math.ceil(layer.kernel[0] / layer.stride[0]) * math.ceil(layer.kernel[1] / layer.stride[1]) * info.in_shape[0]
    return n + int(layer.bias)


def _sup_slope(layer: Activation, h, e):
    """The largest |f'| of the activation on [h - e, h + e]."""
    if layer.name == "linear":
        return np.ones_like(h)
    if layer.name in ("relu", "leaky_relu"):
        low = 0.0 if layer.name == "relu" else layer.slope
        return np.where(h + e > 0, 1.0, low)
    nearest = np.maximum(np.abs(h) - e, 0.0)  # tanh' and sigmoid' peak at 0 and fall with |h|
    if layer.name == "tanh":
        return 1.0 - np.tanh(nearest) ** 2
    s = 1.0 / (1.0 + np.exp(-nearest))
    return s * (1.0 - s)


ACTIVATIONS = {
    "relu": lambda h, slope: np.maximum(h, 0.0),
    "leaky_relu": lambda h, slope: np.where(h > 0, h, slope * h),
    "tanh": lambda h, slope: np.tanh(h),
    "sigmoid": lambda h, slope: 1.0 / (1.0 + np.exp(-h)),
    "linear": lambda h, slope: h,
}


def network_bound(net: Network, weights, x, training: bool = False, masks=None, statistics=None,
                  dtype: str = "float32", x_spread=None, weight_gap=None, statistics_gap=None):
    """The float64 forward pass of ``net`` beside the spread (standard deviation) of one framework's rounding error
    in each output coordinate, under the model of common/tolerances.py's forward section.

    Returns (value, spread) of the flat output (B, -1), then the new running statistics and their spreads (lists;
    the statistics move only in a training pass). ``x_spread``: the input's own spread (a generator's output fed to
    the discriminator), 0 for exact inputs. ``masks``: (B, dropout_units) for a training pass with Dropout, as
    common/stream.py draws them; ``statistics``: [mean0, var0, ...] running values. ``weight_gap``,
    ``statistics_gap``: per array, how far another copy's weights and running statistics lie from these (two
    frameworks after training), carried like rounding: each output then spreads by what those gaps move."""
    u = ROUNDOFF[dtype]
    w = [np.asarray(a, np.float64) for a in weights]
    stats = [np.asarray(a, np.float64).copy() for a in (statistics or [])]
    stats_spread = [np.zeros_like(s) for s in stats]
    h = np.asarray(x, np.float64).reshape(len(x), *net.input_shape)
    var_e = np.zeros_like(h) if x_spread is None else np.asarray(x_spread, np.float64).reshape(h.shape) ** 2
    dw = [np.zeros_like(a) for a in w] if weight_gap is None else [np.asarray(a, np.float64) ** 2 for a in weight_gap]
    ds = [np.zeros_like(a) for a in stats] if statistics_gap is None else \
        [np.asarray(a, np.float64) ** 2 for a in statistics_gap]
    wi = si = mi = 0
    for info in net.layer_info:
        layer = info.layer
        if isinstance(layer, (Dense, Conv2D, ConvTranspose2D)):
            kernel = w[wi]
            value = _contraction(layer, info, h, kernel)
            squares = _contraction(layer, info, h * h, kernel * kernel)
            carried = _contraction(layer, info, var_e, kernel * kernel) + _contraction(layer, info, h * h, dw[wi])
            wi += 1
            if layer.bias:
                shaped = (lambda a: a) if isinstance(layer, Dense) else (lambda a: a[None, :, None, None])
                bias = shaped(w[wi])
                value, squares, carried = value + bias, squares + bias * bias, carried + shaped(dw[wi])
                wi += 1
            h, var_e = value, carried + sum_rounding(_terms(layer, info), value, squares, u) ** 2
        elif isinstance(layer, BatchNorm):
            axes, shape = ((0, 2, 3), (1, -1, 1, 1)) if h.ndim == 4 else ((0,), (1, -1))
            m = h.size // h.shape[1]
            if training:
                mean = h.mean(axis=axes)
                var_mean = var_e.sum(axis=axes) / m ** 2 + \
                    (sum_rounding(m, h.sum(axis=axes), (h * h).sum(axis=axes), u) / m) ** 2
                centred = h - mean.reshape(shape)
                var = (centred ** 2).mean(axis=axes)
                # the mean's error drops out of the variance: the centred values sum to zero
                var_var = 4 * (centred ** 2 * var_e).sum(axis=axes) / m ** 2 + \
                    (sum_rounding(m, var * m, (centred ** 4).sum(axis=axes), u) / m) ** 2 + (u * var) ** 2
                if stats:
                    correction = m / (m - 1) if layer.running_variance == "unbiased" else 1.0
                    moved = ((1 - layer.momentum) * stats[si] + layer.momentum * mean,
                             (1 - layer.momentum) * stats[si + 1] + layer.momentum * var * correction)
                    stats_spread[si] = np.sqrt(layer.momentum ** 2 * var_mean + (2 * u * moved[0]) ** 2)
                    stats_spread[si + 1] = np.sqrt((layer.momentum * correction) ** 2 * var_var
                                                   + (3 * u * moved[1]) ** 2)
                    stats[si], stats[si + 1] = moved
            else:
                mean, var = stats[si], stats[si + 1]
                centred = h - mean.reshape(shape)
                var_mean, var_var = ds[si], ds[si + 1]
            si += 2
            root = np.sqrt(var + layer.eps)
            var_root = var_var / (2 * root) ** 2 + (u * root) ** 2
            normed = centred / root.reshape(shape)
            var_normed = (var_e + var_mean.reshape(shape) + (u * centred) ** 2 + normed ** 2 * var_root.reshape(shape)) \
                / (var + layer.eps).reshape(shape) + (u * normed) ** 2
            if layer.affine:
                scale, offset = w[wi].reshape(shape), w[wi + 1].reshape(shape)
                wi += 2
                h = normed * scale + offset
                var_e = scale ** 2 * var_normed + (u * normed * scale) ** 2 + (u * h) ** 2 \
                    + normed ** 2 * dw[wi - 2].reshape(shape) + dw[wi - 1].reshape(shape)
            else:
                h, var_e = normed, var_normed
        elif isinstance(layer, Activation):
            h, spread = activation_bound(layer, h, np.sqrt(var_e), dtype)
            var_e = spread ** 2
        elif isinstance(layer, Dropout):
            n = int(np.prod(info.in_shape))
            if training and masks is not None:
                mask = np.asarray(masks, np.float64)[:, mi:mi + n].reshape(h.shape)
                h = h * mask
                var_e = var_e * mask ** 2 + (u * h) ** 2
            mi += n
        elif isinstance(layer, (Reshape, Flatten)):
            target = layer.shape if isinstance(layer, Reshape) else (-1,)
            h, var_e = h.reshape(len(h), *target), var_e.reshape(len(var_e), *target)
        elif isinstance(layer, Maxout):
            h = h.reshape(len(h), -1, layer.pieces).max(axis=2)
            var_e = var_e.reshape(len(var_e), -1, layer.pieces).max(axis=2)
    return h.reshape(len(h), -1), np.sqrt(var_e).reshape(len(h), -1), stats, stats_spread


def activation_bound(layer: Activation, h, spread, dtype: str = "float32"):
    """(f(h), its spread): the input's spread times the steepest slope within CONFIDENCE spreads of h, plus the
    function's own rounding (FUNCTION_ULPS for the transcendental ones)."""
    out = ACTIVATIONS[layer.name](h, layer.slope)
    ulps = FUNCTION_ULPS if layer.name in ("tanh", "sigmoid") else 1
    slope = _sup_slope(layer, h, CONFIDENCE * spread)
    return out, np.sqrt((slope * spread) ** 2 + (ulps * ROUNDOFF[dtype] * out) ** 2)


def sum_rounding(n: int, total, squares, u: float):
    """The spread of the rounding error of a sum of n terms whose sum is ``total`` and whose squares sum to
    ``squares`` (common/tolerances.py: u sqrt(n (sum t^2 + (sum t)^2)))."""
    return u * np.sqrt(n * (squares + total * total))


def pair_bound(spread):
    """How far two frameworks' values may lie apart, each with rounding errors of this spread."""
    return CONFIDENCE * PAIR_FACTOR * np.asarray(spread)


def reference_bound(spread):
    """How far one framework's value may lie from the float64 value (tests/reference.py)."""
    return CONFIDENCE * np.asarray(spread)


def worst_ratio(a, b, spread, bound=pair_bound) -> float:
    """max |a - b| / bound(spread) over the coordinates: <= 1 is inside the bound."""
    gap = np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)).reshape(np.shape(spread))
    bound = bound(spread)
    return float(np.max(gap / np.maximum(bound, np.finfo(np.float64).tiny)))


def generate_bound(spec, weights, statistics, noise, weight_gap=None, statistics_gap=None):
    """(G(noise), spread) in evaluation mode, as ``generate`` computes it; weights and statistics as get_weights()
    and get_statistics() give them (the gaps likewise, per network)."""
    value, spread, _, _ = network_bound(spec.generator_network, weights["generator"], noise, False, None,
                                        statistics["generator"], spec.dtype,
                                        weight_gap=None if weight_gap is None else weight_gap["generator"],
                                        statistics_gap=None if statistics_gap is None else statistics_gap["generator"])
    return value, spread


def discriminate_bound(spec, weights, statistics, x):
    """(D's output, spread) as ``discriminate`` reports it: one per pack, the probability for sigmoid losses."""
    x = np.asarray(x).reshape(len(x) // spec.pack, -1)
    value, spread, _, _ = network_bound(spec.discriminator_network, weights["discriminator"], x, False, None,
                                        statistics["discriminator"], spec.dtype)
    if spec.loss.name in SIGMOID_LOSSES:
        value, spread = activation_bound(Activation("sigmoid"), value, spread, spec.dtype)
    return value[:, 0], spread[:, 0]


# ---- losses of one step from D's logits and their spreads ---------------------------------------------------------
def _loss_term(loss_name: str, role: str, l, e):
    """(phi(l), the steepest |phi'| within e of l, function ulps) of one per-example loss term (common/spec.py's
    formulas, as backend_*/losses.py write them: softplus as max(x, 0) + log1p(exp(-|x|)))."""
    sig = lambda x: 1.0 / (1.0 + np.exp(-x))  # noqa: E731
    softplus = lambda x: np.logaddexp(0.0, x)  # noqa: E731
    if loss_name in SIGMOID_LOSSES:
        sign = {"real": -1.0, "fake": 1.0, "g": -1.0 if loss_name == "nonsaturating" else 1.0}[role]
        value = softplus(sign * l) * (-1.0 if (role == "g" and loss_name == "minimax") else 1.0)
        return value, sig(sign * l + e), FUNCTION_ULPS
    if loss_name in ("wasserstein", "wgan-gp"):
        return {"real": -l, "fake": l, "g": -l}[role], np.ones_like(l), 1
    if loss_name == "hinge":
        if role == "g":
            return -l, np.ones_like(l), 1
        margin = 1.0 - l if role == "real" else 1.0 + l
        return np.maximum(margin, 0.0), (margin + e > 0).astype(float), 2
    target = {"real": 1.0, "fake": 0.0, "g": 1.0}[role]  # least-squares: 0.5 (l - target)^2
    return 0.5 * (l - target) ** 2, np.abs(l - target) + e, 3


def mean_term_bound(loss_name: str, role: str, logits, spread, dtype: str = "float32"):
    """(the mean of one loss term over the batch, its spread) from D's logits and their spreads (B,)."""
    u = ROUNDOFF[dtype]
    logits, spread = np.asarray(logits, np.float64), np.asarray(spread, np.float64)
    value, slope, ulps = _loss_term(loss_name, role, logits, CONFIDENCE * spread)
    mean, spread_of_mean = _batch_mean(value, np.sqrt((slope * spread) ** 2 + (ulps * u * value) ** 2), u)
    return mean, float(np.hypot(spread_of_mean, u * mean))


def d_output_bound(loss_name: str, logits, spread, dtype: str = "float32"):
    """(the batch mean of what a step reports for D, its spread): the probability for sigmoid losses, else the
    critic value."""
    if loss_name in SIGMOID_LOSSES:
        value, spread = activation_bound(Activation("sigmoid"), np.asarray(logits, np.float64), spread, dtype)
    else:
        value = np.asarray(logits, np.float64)
    return _batch_mean(value, spread, ROUNDOFF[dtype])


def _batch_mean(value, spread, u: float):
    """(the mean of ``value`` over the batch, its spread): the terms' own spreads averaged, and the sum's rounding."""
    n = len(value)
    rounding = sum_rounding(n, value.sum(), np.sum(value ** 2), u) / n
    return value.mean(), float(np.sqrt(np.sum(np.asarray(spread) ** 2) / n ** 2 + rounding ** 2))
