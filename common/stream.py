"""All the randomness of training, drawn outside the backends from one seed.

A backend never calls its own random generator while training: each step it is handed the real
batches, the noise and the WGAN-GP interpolation coefficients as numpy arrays, so both backends can be
fed the very same numbers. Real data, noise and coefficients come from three independent child streams
of the seed, so changing the loss (which adds coefficients) does not change the data or the noise.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Protocol

import numpy as np

from common.spec import GAN


class RealSource(Protocol):
    """Where real examples come from: a sampler of a known distribution, or a data set."""

    def next_batch(self, rng: np.random.Generator, batch_size: int) -> np.ndarray:
        """(batch_size, data_dim) float32."""
        ...


@dataclass
class StepInputs:
    """Everything random that one training step consumes (see ``common.spec`` for the layout)."""

    real: np.ndarray  # (d_steps, batch, data_dim) float32
    noise: np.ndarray  # (d_steps + 1, batch, latent_dim) float32
    gp_eps: np.ndarray | None  # (d_steps, batch) float32 in [0, 1), one per example; None unless wgan-gp

    def as_kwargs(self) -> dict:
        return {"real": self.real, "noise": self.noise, "gp_eps": self.gp_eps}


def draw_noise(rng: np.random.Generator, kind: str, shape) -> np.ndarray:
    if kind == "normal":
        return rng.standard_normal(shape, dtype=np.float32)
    if kind == "uniform":
        return rng.uniform(-1.0, 1.0, shape).astype(np.float32)
    raise ValueError(f"noise {kind!r} is invalid; allowed: normal, uniform")


class Stream:
    """The seeded stream of step inputs for one run: ``for inputs in Stream(spec, source, seed): ...``."""

    def __init__(self, spec: GAN, source: RealSource, seed: int):
        self.spec = spec
        self.source = source
        data_seq, noise_seq, eps_seq = np.random.SeedSequence(seed).spawn(3)
        self.data_rng = np.random.default_rng(data_seq)
        self.noise_rng = np.random.default_rng(noise_seq)
        self.eps_rng = np.random.default_rng(eps_seq)

    def next(self) -> StepInputs:
        spec = self.spec
        k, batch = spec.updates.d_steps, spec.batch_size
        real = np.stack([self.source.next_batch(self.data_rng, batch) for _ in range(k)])
        noise = draw_noise(self.noise_rng, spec.noise, (spec.updates.noise_batches, batch, spec.latent_dim))
        gp_eps = None
        if spec.loss.name == "wgan-gp":
            gp_eps = self.eps_rng.random((k, batch), dtype=np.float32)
        return StepInputs(real=real.astype(np.float32, copy=False), noise=noise, gp_eps=gp_eps)

    def __iter__(self) -> Iterator[StepInputs]:
        while True:
            yield self.next()

    def fixed_noise(self, n: int) -> np.ndarray:
        """Noise for viewing samples: the same for both backends, apart from the training stream."""
        rng = np.random.default_rng([0xF1, self.spec.latent_dim, n])
        return draw_noise(rng, self.spec.noise, (n, self.spec.latent_dim))
