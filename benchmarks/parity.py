"""Measure how far PyTorch and TensorFlow drift apart on the same GAN: `python -m benchmarks.parity`.

Prints, for every loss and both spec optimisers (and the native ones for contrast): the largest forward difference,
the largest weight difference after one step, and the relative weight distance after TRAJECTORY_STEPS steps, next
to the tolerances the parity tests enforce (common/tolerances.py). The parity tests use the same helpers.
"""
from __future__ import annotations

import argparse

import numpy as np

from common import tolerances as tol
from common.backend import get_backend
from common.init import init_weights
from common.spec import (GAN, LOSSES, MLP, Activation, BatchNorm, Conv2D, ConvTranspose2D, Dense, Dropout, Flatten,
                         Loss, Network, Optimizer, Reshape, Updates)
from common.stream import Stream

PARITY_DATA_DIM = 6
CONV_DATA_SHAPE = (2, 8, 8)  # the conv parity GAN's images: tiny, so that 20 steps take a second


class UniformSource:
    """Real examples for parity: any fixed numbers do, as long as both backends get the same ones."""

    def __init__(self, dim: int = PARITY_DATA_DIM):
        self.dim = dim

    def next_batch(self, rng, batch_size):
        return rng.uniform(-1, 1, (batch_size, self.dim)).astype(np.float32)


def source_for(spec: GAN) -> UniformSource:
    return UniformSource(spec.data_dim)


def parity_spec(loss: str, optimizer: str = "adam", implementation: str = "spec", order: str = "d_then_g",
                reuse: bool = False) -> GAN:
    """A small GAN with every ingredient of the seed models: two hidden layers, LeakyReLU, tanh output."""
    opt = Optimizer(optimizer, lr=1e-3, beta1=0.5, beta2=0.999, implementation=implementation)
    spec = GAN(latent_dim=4, data_shape=(PARITY_DATA_DIM,), batch_size=16,
               generator=MLP((4, 32, 32, PARITY_DATA_DIM), hidden_activation="leaky_relu", output_activation="tanh"),
               discriminator=MLP((PARITY_DATA_DIM, 32, 32, 1), hidden_activation="leaky_relu",
                                 output_activation="sigmoid"),
               loss=Loss("minimax"), d_optimizer=opt, g_optimizer=opt,
               updates=Updates(order=order, d_steps=1, reuse_fake=reuse))
    return spec.with_loss(Loss(loss))


def conv_parity_spec(loss: str, optimizer: str = "adam", implementation: str = "spec", order: str = "d_then_g",
                     reuse: bool = True) -> GAN:
    """A tiny convolutional GAN with every layer kind and both DCGANs' ingredients: G Dense (no bias) + BatchNorm1d
    + Reshape, a 'same' stride-2 k5 transposed convolution (crop (1, 2): sliced in PyTorch) + BatchNorm2d, a k4 s2
    p1 one; D a k4 s2 p1 convolution, Dropout, a 'same' stride-2 k3 one (pads (0, 1)), BatchNorm2d with Keras'
    biased running variance, Flatten and Dense."""
    opt = Optimizer(optimizer, lr=1e-3, beta1=0.5, beta2=0.999, implementation=implementation)
    c, h, w = CONV_DATA_SHAPE
    gen = Network((4,), (Dense(4 * 2 * 2, bias=False), BatchNorm(), Activation("leaky_relu", 0.2), Reshape((4, 2, 2)),
                         ConvTranspose2D(4, 5, 2, "same", bias=False), BatchNorm(), Activation("relu"),
                         ConvTranspose2D(c, 4, 2, 1), Activation("tanh")))
    disc = Network(CONV_DATA_SHAPE, (Conv2D(4, 4, 2, 1), Activation("leaky_relu", 0.2), Dropout(0.3),
                                     Conv2D(6, 3, 2, "same", bias=False),
                                     BatchNorm(momentum=0.01, eps=1e-3, running_variance="biased"),
                                     Activation("leaky_relu", 0.2), Flatten(), Dense(1)))
    return GAN(latent_dim=4, data_shape=CONV_DATA_SHAPE, batch_size=16, generator=gen, discriminator=disc,
               loss=Loss(loss), d_optimizer=opt, g_optimizer=opt, updates=Updates(order=order, d_steps=1,
                                                                                   reuse_fake=reuse), init="dcgan")


def build_pair(spec: GAN, seed: int = 0, mode_torch: str = "eager", mode_tf: str = "eager"):
    weights = init_weights(spec, seed)
    return (get_backend("torch").build(spec, weights, device="cpu", mode=mode_torch),
            get_backend("tf").build(spec, weights, device="cpu", mode=mode_tf))


def flat(weights) -> np.ndarray:
    return np.concatenate([w.ravel() for net in ("generator", "discriminator") for w in weights[net]])


def relative_distance(a, b) -> float:
    a, b = flat(a), flat(b)
    return float(np.linalg.norm(a - b) / np.linalg.norm(a))


def max_weight_difference(a, b) -> float:
    return float(np.max(np.abs(flat(a) - flat(b))))


def run_both(spec: GAN, steps: int, seed: int = 0):
    """Train both backends on the same stream; returns the two trainers and the per-step results of each."""
    pt, tf = build_pair(spec, seed)
    stream = Stream(spec, source_for(spec), seed=seed)
    results = []
    for _ in range(steps):
        inputs = stream.next().as_kwargs()
        results.append((pt.train_step(**inputs), tf.train_step(**inputs)))
    return pt, tf, results


def forward_difference(spec: GAN, seed: int = 1) -> float:
    pt, tf = build_pair(spec, seed)
    rng = np.random.default_rng(0)
    noise = rng.standard_normal((64, spec.latent_dim)).astype(np.float32)
    x = rng.uniform(-1, 1, (64, spec.data_dim)).astype(np.float32)
    return float(max(np.abs(pt.generate(noise) - tf.generate(noise)).max(),
                     np.abs(pt.discriminate(x) - tf.discriminate(x)).max()))


def measure(loss: str, optimizer: str, implementation: str, model: str = "mlp") -> dict:
    spec = (parity_spec if model == "mlp" else conv_parity_spec)(loss, optimizer, implementation)
    pt, tf, results = run_both(spec, 1)
    one_step = max_weight_difference(pt.get_weights(), tf.get_weights())
    loss_gap = max(abs(a[k] - b[k]) for a, b in results for k in a)
    pt, tf, results = run_both(spec, tol.TRAJECTORY_STEPS)
    return {"model": model, "loss": loss, "optimizer": f"{optimizer} ({implementation})",
            "forward_max_abs": forward_difference(spec),
            "step1_loss_max_abs": loss_gap,
            "step1_weight_max_abs": one_step,
            f"step{tol.TRAJECTORY_STEPS}_loss_max_abs": max(abs(a[k] - b[k]) for a, b in results for k in a),
            f"step{tol.TRAJECTORY_STEPS}_weight_rel_l2": relative_distance(pt.get_weights(), tf.get_weights())}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--no-native", action="store_true", help="skip the native-optimiser rows")
    args = parser.parse_args(argv)
    import pandas as pd

    rows = [measure(loss, opt, "spec", model) for model in ("mlp", "conv") for loss in LOSSES
            for opt in ("adam", "rmsprop")]
    if not args.no_native:
        rows += [measure(loss, opt, "native", model) for model in ("mlp", "conv") for loss in ("nonsaturating",)
                 for opt in ("adam", "rmsprop")]
    table = pd.DataFrame(rows)
    with pd.option_context("display.width", 200, "display.float_format", "{:.2e}".format):
        print(table.to_string(index=False))
    print(f"\ntolerances enforced by tests/test_parity.py (common/tolerances.py): forward {tol.FORWARD_ATOL:g}, "
          f"losses {tol.LOSS_ATOL:g}, one-step weights {tol.STEP_WEIGHT_ATOL:g}, {tol.TRAJECTORY_STEPS}-step losses "
          f"{tol.TRAJECTORY_LOSS_ATOL:g}, {tol.TRAJECTORY_STEPS}-step relative weight distance "
          f"{tol.TRAJECTORY_WEIGHT_RTOL:g}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
