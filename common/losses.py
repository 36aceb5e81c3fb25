"""The framework-neutral part of the losses: how L_D is put together from its terms.

The terms themselves (``d_loss_terms``, ``g_loss``, the gradient penalty) are written in each backend's ops
(``backend_*/losses.py``); this composition uses only + and *, so it runs on either framework's tensors.
"""
from __future__ import annotations

from common.spec import Loss


def combine_d_loss(loss: Loss, real_term, fake_term, penalty=None):
    """L_D = real term + fake term (halved with ``d_average``, seed 002), plus gp_weight x penalty for wgan-gp
    (added after the averaging)."""
    total = real_term + fake_term
    if loss.d_average:
        total = total / 2.0
    if loss.name == "wgan-gp":
        if penalty is None:
            raise ValueError("wgan-gp needs the gradient penalty")
        total = total + loss.gp_weight * penalty
    return total
