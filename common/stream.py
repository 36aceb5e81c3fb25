"""All the randomness of training, drawn outside the backends from one seed.

A backend never calls its own random generator while training: each step it is handed the real
batches, the noise, the WGAN-GP interpolation coefficients and D's dropout masks as numpy arrays, so both
backends can be fed the very same numbers. Real data, noise, coefficients and masks come from independent child
streams of the seed (``SeedSequence(seed).spawn``: children 0-2 are data, noise and coefficients as they always
were, 3 the masks of D's passes on real and fake batches and in G's update, 4 the masks of D's passes on the
WGAN-GP interpolates), so changing the loss does not change the data, the noise or the other masks, and a model
without Dropout draws exactly what it did before masks existed.

A dropout mask holds, per unit, 0 (dropped) or the layer's 1 / (1 - rate) rounded to float32 (kept): a unit is
kept when its U[0, 1) draw is >= rate, as TensorFlow's dropout decides (tf.nn.experimental.stateless_dropout,
``random >= rate``). A backend multiplies the activation by the mask: that is PyTorch's own dropout formula,
``input * (bernoulli(1 - p) / (1 - p))``, and one rounding from TensorFlow's ``(x * scale) * keep``.

In a float64 run (``GAN.dtype``) every input is the float32 run's, converted exactly: the same draws (float32
normal noise, float32 uniforms, the same kept units) and the same real batches, so the runs of one seed in the two
precisions see identical numbers and differ only by their arithmetic and the initial weights' rounding
(common/init.py). A mask's kept value is 1 / (1 - rate) rounded to the run's dtype.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Protocol

import numpy as np

from common.init import DTYPE
from common.spec import GAN, dropout_pass


class RealSource(Protocol):
    """Where real examples come from: a sampler of a known distribution, or a data set."""

    def next_batch(self, rng: np.random.Generator, batch_size: int) -> np.ndarray:
        """(batch_size, data_dim) float32."""
        ...


@dataclass
class StepInputs:
    """Everything random that one training step consumes (see ``common.spec`` for the layout)."""

    # float32 unless the spec's dtype is float64 (then every array is float64)
    real: np.ndarray  # (d_steps, batch * pack, data_dim) float32 (spec.examples_per_batch rows)
    noise: np.ndarray  # (d_steps + 1, batch * pack, latent_dim) float32
    gp_eps: np.ndarray | None  # (d_steps, batch) float32 in [0, 1), one per example; None unless wgan-gp
    # (spec.dropout_passes, batch, dropout_units) float32, 0 or 1/(1-rate); None unless D has Dropout
    dropout: np.ndarray | None = None

    def as_kwargs(self) -> dict:
        kwargs = {"real": self.real, "noise": self.noise, "gp_eps": self.gp_eps}
        if self.dropout is not None:
            kwargs["dropout"] = self.dropout
        return kwargs


def draw_noise(rng: np.random.Generator, kind: str, shape) -> np.ndarray:
    if kind == "normal":
        return rng.standard_normal(shape, dtype=np.float32)
    if kind == "uniform":
        return rng.uniform(-1.0, 1.0, shape).astype(np.float32)
    raise ValueError(f"noise {kind!r} is invalid; allowed: normal, uniform")


class Stream:
    """The seeded stream of step inputs for one run: ``for inputs in Stream(spec, source, seed): ...``.
    ``transform``: applied to each step's inputs (a chaos-floor twin's reordering, common/twin.py)."""

    def __init__(self, spec: GAN, source: RealSource, seed: int, transform=None):
        self.spec = spec
        self.source = source
        self.transform = transform
        data_seq, noise_seq, eps_seq, mask_seq, gp_mask_seq = np.random.SeedSequence(seed).spawn(5)
        self.data_rng = np.random.default_rng(data_seq)
        self.noise_rng = np.random.default_rng(noise_seq)
        self.eps_rng = np.random.default_rng(eps_seq)
        self.mask_rng = np.random.default_rng(mask_seq)
        self.gp_mask_rng = np.random.default_rng(gp_mask_seq)
        self.rate, self.scale = dropout_units(spec)
        self.dtype = np.dtype(spec.dtype)

    def next(self) -> StepInputs:
        spec = self.spec
        k, batch = spec.updates.d_steps, spec.examples_per_batch  # batch_size packs of spec.pack examples
        real = np.stack([self.source.next_batch(self.data_rng, batch) for _ in range(k)])
        noise = draw_noise(self.noise_rng, spec.noise, (spec.updates.noise_batches, batch, spec.latent_dim))
        gp_eps = None
        if spec.loss.name == "wgan-gp":  # one per D example: per pack
            gp_eps = self.eps_rng.random((k, spec.batch_size), dtype=np.float32)
        if gp_eps is not None:
            gp_eps = gp_eps.astype(self.dtype, copy=False)
        inputs = StepInputs(real=real.astype(np.float32, copy=False).astype(self.dtype, copy=False),
                            noise=noise.astype(self.dtype, copy=False), gp_eps=gp_eps,
                            dropout=self.draw_masks() if self.rate is not None else None)
        return inputs if self.transform is None else self.transform(inputs)

    def draw_masks(self) -> np.ndarray:
        """One step's masks, (dropout_passes, batch, units), in the pass order of common/spec.py."""
        spec = self.spec
        gp_passes = {dropout_pass(spec, k, "gp") for k in range(spec.updates.d_steps)} \
            if spec.loss.name == "wgan-gp" else set()
        masks = np.empty((spec.dropout_passes, spec.batch_size, len(self.rate)), self.dtype)
        for p in range(spec.dropout_passes):
            rng = self.gp_mask_rng if p in gp_passes else self.mask_rng
            keep = rng.random((spec.batch_size, len(self.rate)), dtype=DTYPE) >= self.rate
            np.multiply(keep, self.scale, out=masks[p])
        return masks

    def __iter__(self) -> Iterator[StepInputs]:
        while True:
            yield self.next()

    def fixed_noise(self, n: int) -> np.ndarray:
        """Noise for viewing samples: the same for both backends, apart from the training stream."""
        rng = np.random.default_rng([0xF1, self.spec.latent_dim, n])
        return draw_noise(rng, self.spec.noise, (n, self.spec.latent_dim)).astype(self.dtype, copy=False)


def dropout_units(spec: GAN) -> tuple[np.ndarray, np.ndarray] | tuple[None, None]:
    """Per unit of D's masks (its Dropout layers in order, each flattened C, H, W): the float32 rate (the keep
    decision is made in float32 in every dtype) and the scale 1 / (1 - rate) in the spec's dtype; (None, None)
    when D has no Dropout."""
    net = spec.discriminator_network
    layers = net.dropout_layers()
    if not layers:
        return None, None
    rates = [np.full(int(np.prod(shape)), net.layers[index].rate, DTYPE) for index, shape in layers]
    dtype = np.dtype(spec.dtype).type
    scales = [np.full(int(np.prod(shape)), dtype(net.layers[index].scale)) for index, shape in layers]
    return np.concatenate(rates), np.concatenate(scales)
