"""The chaos floor's twins: the same GAN trained again with its hidden units and its batches in another order.

Permuting a layer's output units (Dense units, convolution channels) and the next layer's inputs alike, and every
BatchNorm, dropout mask and Maxout group with them, leaves the function a network computes unchanged; presenting a
batch's examples (packs) in another order, with their noise, dropout masks and WGAN-GP coefficients, leaves a step's
losses and gradients unchanged. In exact arithmetic a twin therefore trains the very same GAN. In floating point
every sum of the step is taken in another order: each matmul and convolution sums its inputs in another order, each
gradient, BatchNorm statistic and loss sums the batch in another order. That is the rounding two frameworks
differ by, at every step: the twins are the like-for-like floor the cross-framework drift is judged against
(benchmarks/report/divergence.py, common/tolerances.py). The network's inputs and outputs keep their order, so its
samples and data are untouched, and ``restore`` maps a twin's weights back to the original units to be compared.
"""
from __future__ import annotations

import math

import numpy as np

from common.init import TWIN_INITS
from common.spec import GAN, BatchNorm, Conv2D, ConvTranspose2D, Dense, Dropout, Flatten, Maxout, Network, Reshape
from common.stream import StepInputs

# init -> the seed's child stream its permutations come from (common/init.py TWIN_INITS): 5, 6, 7, after the
# stream's own children 0-4, which stay what they are (spawn(n)'s first children do not depend on n).
TWINS = {init: 5 + i for i, init in enumerate(TWIN_INITS)}
WEIGHTED = (Dense, Conv2D, ConvTranspose2D)


def _blocks(order: np.ndarray, size: int) -> np.ndarray:
    """Unit indices of a permutation of blocks of ``size`` consecutive units (channels of C, H, W; Maxout groups)."""
    return (order[:, None] * size + np.arange(size)).ravel()


class NetworkPlan:
    """For one network: which original unit each twin unit is, layer by layer, and so which index each parameter,
    statistic and dropout-mask unit takes along each axis (twin = original[index])."""

    def __init__(self, net: Network, rng: np.random.Generator):
        infos = net.layer_info
        last = max((i for i, info in enumerate(infos) if isinstance(info.layer, WEIGHTED)), default=-1)
        shape = net.input_shape
        units = np.arange(math.prod(shape))  # twin unit j holds original unit units[j] (C, H, W order)
        channels = np.arange(shape[0]) if len(shape) == 3 else None
        self.parameters: list[list[tuple[int, np.ndarray]]] = []  # per array: (axis, index) pairs
        self.statistics: list[np.ndarray] = []
        masks = []
        for i, info in enumerate(infos):
            layer = info.layer
            if isinstance(layer, WEIGHTED):
                width = layer.units if isinstance(layer, Dense) else layer.filters
                out = np.arange(width) if i == last else self._output_order(infos, i, width, rng)
                if isinstance(layer, Dense):
                    self.parameters.append([(0, units), (1, out)])
                else:
                    self.parameters.append([(2, channels), (3, out)])
                if layer.bias:
                    self.parameters.append([(0, out)])
                if isinstance(layer, Dense):
                    units, channels = out, None
                else:
                    channels = out
                    units = _blocks(out, math.prod(info.out_shape[1:]))
            elif isinstance(layer, BatchNorm):
                index = channels if channels is not None else units
                if layer.affine:
                    self.parameters += [[(0, index)], [(0, index)]]
                self.statistics += [index, index]
            elif isinstance(layer, Dropout):
                masks.append(units)
            elif isinstance(layer, Reshape) and len(layer.shape) == 3:
                size = math.prod(layer.shape[1:])
                channels = units.reshape(-1, size)[:, 0] // size  # a block order, as _output_order drew it
                if not np.array_equal(_blocks(channels, size), units):
                    raise ValueError("a Reshape to channels after units permuted within a channel")
            elif isinstance(layer, (Reshape, Flatten)):
                channels = None
            elif isinstance(layer, Maxout):
                groups = units.reshape(-1, layer.pieces)[:, 0] // layer.pieces
                units, channels = groups, None
        offsets = np.cumsum([0] + [len(m) for m in masks])
        self.mask_units = np.concatenate([m + o for m, o in zip(masks, offsets)]) if masks else None

    @staticmethod
    def _output_order(infos, i: int, width: int, rng) -> np.ndarray:
        """A random order of layer i's outputs that the layers up to the next weighted one can follow: whole
        channels before a Reshape to (C, H, W), whole groups before a Maxout."""
        for info in infos[i + 1:]:
            layer = info.layer
            if isinstance(layer, WEIGHTED):
                break
            if isinstance(layer, Reshape) and len(layer.shape) == 3:
                size = math.prod(layer.shape[1:])
                return _blocks(rng.permutation(width // size), size)
            if isinstance(layer, Maxout):
                return _blocks(rng.permutation(width // layer.pieces), layer.pieces)
        return rng.permutation(width)

    def forward(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        return [_take(a, plan) for a, plan in zip(arrays, self.parameters)]

    def backward(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        return [_take(a, [(axis, np.argsort(index)) for axis, index in plan]) for a, plan in zip(arrays, self.parameters)]


def _take(array: np.ndarray, plan) -> np.ndarray:
    for axis, index in plan:
        if index is not None:
            array = np.take(array, index, axis=axis)
    return array


class Twin:
    """One twin of a run: its unit orders (G's, D's) and its batch orders, all drawn from the seed's child stream."""

    def __init__(self, spec: GAN, seed: int, init: str):
        rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(5 + len(TWINS))[TWINS[init]])
        self.spec = spec
        self.plans = {"generator": NetworkPlan(spec.generator_network, rng),
                      "discriminator": NetworkPlan(spec.discriminator_network, rng)}
        self.order_rng = rng

    def weights(self, weights: dict) -> dict:
        """The original units' weights (neutral layout) as the twin holds them."""
        return {net: self.plans[net].forward(arrays) for net, arrays in weights.items()}

    def restore(self, weights: dict) -> dict:
        """A twin's weights back in the original units' order (the inverse of ``weights``)."""
        return {net: self.plans[net].backward(arrays) for net, arrays in weights.items()}

    def statistics(self, statistics: dict) -> dict:
        return {net: [np.take(a, index) for a, index in zip(arrays, self.plans[net].statistics)]
                for net, arrays in statistics.items()}

    def inputs(self, inputs):
        """One step's inputs for the twin: the packs in a fresh order with their noise, masks and coefficients, and
        each mask's units in the twin's unit order."""
        spec = self.spec
        order = self.order_rng.permutation(spec.batch_size)
        rows = _blocks(order, spec.pack)
        dropout = None if inputs.dropout is None else inputs.dropout[:, order]
        if dropout is not None:
            dropout = dropout[:, :, self.plans["discriminator"].mask_units]
        # fresh C-order copies, as the stream's own arrays: a compiled step guards on strides, and fancy indexing leaves
        # a size-1 axis 0 with a stride that ascontiguousarray keeps
        packed = {"real": inputs.real[:, rows], "noise": inputs.noise[:, rows], "dropout": dropout,
                  "gp_eps": None if inputs.gp_eps is None else inputs.gp_eps[:, order]}
        return StepInputs(**{k: None if v is None else np.array(v, order="C", copy=True) for k, v in packed.items()})
