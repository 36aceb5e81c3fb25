"""An analytic FLOP count of one training step, from the spec alone (no framework, no profiler).

Rules (2 FLOPs per multiply-add; only matmuls are counted, activations/losses/optimiser updates are not,
which for these MLPs is well under 1% of the work):

* Forward of a net on a batch of B: ``F = sum over layers 2 * B * fan_in * fan_out``.
* Backward: the weight gradient costs one ``F`` and the input gradient another ``F``, except the input
  gradient of a network's first layer when nothing needs it (D on real data or on a detached fake,
  G on its noise); ``F1`` below is that first layer's share of ``F``.
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
"""
from __future__ import annotations

from common.spec import GAN, MLP


def forward_flops(mlp: MLP, batch: int) -> int:
    """FLOPs of one forward pass of ``mlp`` on ``batch`` examples (matmuls only)."""
    return sum(2 * batch * fan_in * fan_out for fan_in, fan_out in mlp.layer_shapes)


def first_layer_flops(mlp: MLP, batch: int) -> int:
    fan_in, fan_out = mlp.layer_shapes[0]
    return 2 * batch * fan_in * fan_out


def train_step_flops(spec: GAN) -> dict:
    """FLOPs of one training step of ``spec`` (all ``d_steps`` D updates and the G update).

    Returns ``{"total", "d_update", "g_update", "examples", "approximate"}``: ``d_update`` is all D updates
    together; ``examples`` counts the real + fake examples the step pushes through D.
    """
    batch, k = spec.batch_size, spec.updates.d_steps
    fwd_g, fwd_d = forward_flops(spec.generator, batch), forward_flops(spec.discriminator, batch)
    first_g, first_d = first_layer_flops(spec.generator, batch), first_layer_flops(spec.discriminator, batch)

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
