"""An analytic FLOP count of one training step, from the spec alone (no framework, no profiler).

Rules (2 FLOPs per multiply-add; only the products of Dense and convolution layers are counted: activations,
BatchNorm, dropout, losses and optimiser updates are not, which is well under 1% of the work for the MLPs and
about 1% for the DCGANs):

* Forward of a net on a batch of B, per layer: Dense ``2 B in out``; Conv2D ``2 B Ho Wo Cout Cin kh kw`` (one
  multiply-add per output pixel, output channel and kernel tap); ConvTranspose2D ``2 B Hi Wi Cin Cout kh kw`` (every
  INPUT pixel scatters into kh kw outputs per output channel; its crop discards some, still computed).
  ``F`` is the sum over the layers.
* Backward: the weight gradient costs one ``F`` and the input gradient another ``F`` (for a convolution the
  input gradient is a transposed convolution of the same size, and the other way round), except the input
  gradient of a network's first weight layer when nothing needs it (D on real data or on a detached fake, G on
  its noise); ``F1`` below is that first layer's share of ``F``.
* Only the passes the update semantics need (``common.spec``): each D update runs G forward (no grad),
  D forward and backward on the real and on the fake batch; each G update runs G forward, D forward,
  D's input gradients (all layers, to reach G) but not D's weight gradients, and G's backward.
  With ``reuse_fake`` the G update and the adjacent D update share one G forward; ``simultaneous`` shares
  one fake batch the same way (approximate: a backend may also share D's forward on the fake).
* wgan-gp adds, per D update, D forward on the interpolates and a double backward, counted as
  ``6 * F(D)`` in all: an approximation, said so in the result (``approximate``).

Worked example, the ``mnist`` model (G 100-128-256-512-1024-784, D 784-512-256-1) at batch 128:
  per example G has 1 503 744 multiply-adds, D 532 736, D's first layer 401 408, G's first 12 800, so
  F(G) = 0.38496, F(D) = 0.13638, F1(D) = 0.10276, F1(G) = 0.00328 GFLOP.
  D update = F(G) + 2 F(D) forward + 2 (2 F(D) - F1(D)) backward          = 0.99772 GFLOP
  G update = F(G) + F(D) forward + F(D) (D input grads) + 2 F(G) - F1(G)   = 1.42436 GFLOP
  one step = 2.42 GFLOP (2.56 if a backend also computes D's unused weight gradients in G's update,
  as a plain ``g_loss.backward()`` in PyTorch does; 2.04 if G's fake were reused): about 2.2 +- 10%.

The ``dcgan-mnist`` model at batch 256: F(G) = 26.49 GFLOP (its 7x7 256->128 5x5 transposed convolution alone
20.55), F(D) = 5.30, F1(D) = 0.16, F1(G) = 0.64; simultaneous with reuse: D update F(G) + 2 F(D) +
2 (2 F(D) - F1(D)) = 57.98, G update 2 F(D) + 2 F(G) - F1(G) = 62.95: 120.9 GFLOP a step (``dcgan-faces`` at
batch 64: 145.6).
"""
from __future__ import annotations

import math

from common.spec import GAN, MLP, Conv2D, ConvTranspose2D, Dense, Network


def layer_flops(info, batch: int) -> int:
    """FLOPs of one resolved layer's forward pass (0 for layers without products)."""
    layer = info.layer
    if isinstance(layer, Dense):
        return 2 * batch * info.in_shape[0] * layer.units
    if isinstance(layer, Conv2D):
        return 2 * batch * math.prod(info.out_shape) * info.in_shape[0] * math.prod(layer.kernel)
    if isinstance(layer, ConvTranspose2D):
        return 2 * batch * math.prod(info.in_shape) * layer.filters * math.prod(layer.kernel)
    return 0


def _layers(net: MLP | Network) -> list[int]:
    return [f for f in (layer_flops(info, 1) for info in net.network().layer_info) if f]


def forward_flops(net: MLP | Network, batch: int) -> int:
    """FLOPs of one forward pass of ``net`` on ``batch`` examples (products only)."""
    return batch * sum(_layers(net))


def first_layer_flops(net: MLP | Network, batch: int) -> int:
    return batch * _layers(net)[0]


def train_step_flops(spec: GAN) -> dict:
    """FLOPs of one training step of ``spec`` (all ``d_steps`` D updates and the G update).

    Returns ``{"total", "d_update", "g_update", "examples", "approximate"}``: ``d_update`` is all D updates
    together; ``examples`` counts the real + fake examples the step pushes through D.
    """
    batch, k = spec.batch_size, spec.updates.d_steps
    rows = spec.examples_per_batch  # G makes batch * pack examples; D sees batch packs (common/spec.py GAN.pack)
    fwd_g, fwd_d = forward_flops(spec.generator, rows), forward_flops(spec.discriminator, batch)
    first_g, first_d = first_layer_flops(spec.generator, rows), first_layer_flops(spec.discriminator, batch)

    one_d_update = fwd_g + 2 * fwd_d + 2 * (2 * fwd_d - first_d)
    if spec.loss.name == "wgan-gp":
        one_d_update += 6 * fwd_d
    g_update = fwd_g + fwd_d + fwd_d + (2 * fwd_g - first_g)
    if spec.updates.reuse_fake or spec.updates.order == "simultaneous":
        g_update -= fwd_g  # the fake batch of the adjacent D update is reused
    d_update = k * one_d_update
    return {
        "total": d_update + g_update,
        "d_update": d_update,
        "g_update": g_update,
        "examples": k * 2 * batch + batch,
        "approximate": spec.loss.name == "wgan-gp" or spec.updates.order == "simultaneous",
    }


# ----------------------------------------------------------------------------- the step's floor (issue 26)
# A step can be no faster than its products run alone plus the optimiser updates' least memory traffic
# (benchmarks/timing.py times both on the machine; "% of floor" = floor / step time).

# Words the optimiser update must move per parameter at the least: each of the parameter, its gradient and its
# moments read once, and the parameter and moments written once.
OPTIMIZER_WORDS = {"adam": 7, "rmsprop": 5}  # Adam: p, g, m, v read; p, m, v written. RMSprop: p, g, v; p, v


def optimizer_traffic_bytes(spec: GAN) -> int:
    """The least memory traffic of one step's optimiser updates (OPTIMIZER_WORDS per parameter per update; D's
    once per critic step), in bytes of the spec's dtype."""
    itemsize = 8 if spec.dtype == "float64" else 4
    return itemsize * sum(updates * net.parameter_count * OPTIMIZER_WORDS[opt.name] for net, opt, updates in (
        (spec.generator, spec.g_optimizer, 1), (spec.discriminator, spec.d_optimizer, spec.updates.d_steps)))


def dense_products(spec: GAN) -> list[tuple[int, int, int]] | None:
    """The (m, k, n) of each (m x k) @ (k x n) product of one forward and backward pass of both networks: x @ W,
    grad @ W^T and x^T @ grad per Dense layer (G on the batch's examples_per_batch rows, D on its batch). None
    when a network has convolutions: their floor is not a set of matmuls timed alone."""
    shapes = []
    for net, rows in ((spec.generator, spec.examples_per_batch), (spec.discriminator, spec.batch_size)):
        for info in net.network().layer_info:
            if isinstance(info.layer, (Conv2D, ConvTranspose2D)):
                return None
            if isinstance(info.layer, Dense):
                fan_in, fan_out = math.prod(info.in_shape), info.layer.units
                shapes += [(rows, fan_in, fan_out), (rows, fan_out, fan_in), (fan_in, rows, fan_out)]
    return shapes
