"""The six GAN losses and the WGAN-GP penalty, from D's logits (formulas in common.spec / the brief).

softplus is written out (max(x, 0) + log1p(exp(-|x|))) instead of F.softplus or BCEWithLogits, whose
thresholds differ from TensorFlow's: both backends evaluate the very same expression.
"""
from __future__ import annotations

import torch

from common.losses import combine_d_loss
from common.spec import GP_NORM_EPS, SIGMOID_LOSSES, Loss


def softplus(x: torch.Tensor) -> torch.Tensor:
    return torch.clamp(x, min=0.0) + torch.log1p(torch.exp(-torch.abs(x)))


def d_loss_terms(loss: Loss, l_r: torch.Tensor, l_f: torch.Tensor):
    """(real term, fake term) of L_D; their sum (or mean, with d_average) is L_D without the penalty."""
    name = loss.name
    if name in SIGMOID_LOSSES:
        return softplus(-l_r).mean(), softplus(l_f).mean()
    if name in ("wasserstein", "wgan-gp"):
        return -l_r.mean(), l_f.mean()
    if name == "hinge":
        return torch.relu(1.0 - l_r).mean(), torch.relu(1.0 + l_f).mean()
    if name == "least-squares":
        return 0.5 * torch.square(l_r - 1.0).mean(), 0.5 * torch.square(l_f).mean()
    raise ValueError(f"loss {name!r} is unknown")


def d_loss(loss: Loss, l_r: torch.Tensor, l_f: torch.Tensor, penalty: torch.Tensor | None = None) -> torch.Tensor:
    """L_D from logits l_r = D(real), l_f = D(fake), both (B,); ``penalty`` is wgan-gp's mean penalty."""
    return combine_d_loss(loss, *d_loss_terms(loss, l_r, l_f), penalty)


def g_loss(loss: Loss, l_f: torch.Tensor) -> torch.Tensor:
    name = loss.name
    if name == "minimax":
        return -softplus(l_f).mean()
    if name == "nonsaturating":
        return softplus(-l_f).mean()
    if name == "least-squares":
        return 0.5 * torch.square(l_f - 1.0).mean()
    return -l_f.mean()  # wasserstein, wgan-gp, hinge


def gradient_penalty(discriminator, real: torch.Tensor, fake: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """mean over examples of (sqrt(sum_j (dD(x_hat)/dx_hat_j)^2 + GP_NORM_EPS) - 1)^2.

    x_hat = eps * real + (1 - eps) * fake with one eps per example, (B,), on the flat data (an image's C*H*W
    pixels: the norm is over all of them); ``discriminator`` is any callable x -> (B, 1), e.g. D's training pass
    with its dropout mask. The inner gradient keeps its graph (create_graph) so that D's loss can be
    differentiated through it (second order, through convolutions and BatchNorm alike).
    """
    eps = eps.reshape(-1, 1)
    x_hat = (eps * real + (1.0 - eps) * fake).detach().requires_grad_(True)
    critic = discriminator(x_hat)
    # Examples are independent, so the gradient of the sum is each example's own gradient.
    (grad,) = torch.autograd.grad(critic.sum(), x_hat, create_graph=True)
    norm = torch.sqrt(torch.sum(torch.square(grad), dim=1) + GP_NORM_EPS)
    return torch.square(norm - 1.0).mean()


def d_output(loss: Loss, logits: torch.Tensor) -> torch.Tensor:
    """What train_step reports for D: sigmoid(logits) for sigmoid losses, the critic value otherwise."""
    return torch.sigmoid(logits) if loss.name in SIGMOID_LOSSES else logits
