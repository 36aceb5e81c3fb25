"""The six GAN losses and the WGAN-GP penalty, from D's logits (formulas in common.spec / the brief).

softplus is written out (max(x, 0) + log1p(exp(-|x|))) instead of jax.nn.softplus (logaddexp), as in the other
backends: all three evaluate the very same expression. Its max(x, 0) is ``where(x >= 0, x, 0)``, whose gradient at
0 is 1 as torch.clamp's and tf.maximum's (jnp.maximum splits a tie's gradient 1/2, 1/2).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from common.losses import combine_d_loss
from common.spec import GP_NORM_EPS, SIGMOID_LOSSES, Loss


def softplus(x):
    return jnp.where(x >= 0, x, 0.0) + jnp.log1p(jnp.exp(-jnp.abs(x)))


def d_loss_terms(loss: Loss, l_r, l_f):
    """(real term, fake term) of L_D; their sum (or mean, with d_average) is L_D without the penalty."""
    name = loss.name
    if name in SIGMOID_LOSSES:
        return jnp.mean(softplus(-l_r)), jnp.mean(softplus(l_f))
    if name in ("wasserstein", "wgan-gp"):
        return -jnp.mean(l_r), jnp.mean(l_f)
    if name == "hinge":
        return jnp.mean(jax.nn.relu(1.0 - l_r)), jnp.mean(jax.nn.relu(1.0 + l_f))
    if name == "least-squares":
        return 0.5 * jnp.mean(jnp.square(l_r - 1.0)), 0.5 * jnp.mean(jnp.square(l_f))
    raise ValueError(f"loss {name!r} is unknown")


def d_loss(loss: Loss, l_r, l_f, penalty=None):
    """L_D from logits l_r = D(real), l_f = D(fake), both (B,); ``penalty`` is wgan-gp's mean penalty."""
    return combine_d_loss(loss, *d_loss_terms(loss, l_r, l_f), penalty)


def g_loss(loss: Loss, l_f):
    name = loss.name
    if name == "minimax":
        return -jnp.mean(softplus(l_f))
    if name == "nonsaturating":
        return jnp.mean(softplus(-l_f))
    if name == "least-squares":
        return 0.5 * jnp.mean(jnp.square(l_f - 1.0))
    return -jnp.mean(l_f)  # wasserstein, wgan-gp, hinge


def gradient_penalty(discriminator, real, fake, eps, has_aux: bool = False):
    """mean over examples of (sqrt(sum_j (dD(x_hat)/dx_hat_j)^2 + GP_NORM_EPS) - 1)^2.

    x_hat = eps * real + (1 - eps) * fake with one eps per example, (B,). ``discriminator`` is any function
    x -> (B, 1); with ``has_aux`` it returns (output, aux) (D's training pass and the statistics it leaves) and the
    penalty comes back as (penalty, aux). Called inside the function jax.grad differentiates for D's loss, the inner
    jax.grad is itself differentiated (second order, through convolutions and BatchNorm alike).
    """
    eps = jnp.reshape(eps, (-1, 1))
    x_hat = eps * real + (1.0 - eps) * fake

    def critic_sum(x):
        # Examples are independent, so the gradient of the sum is each example's own gradient.
        out = discriminator(x)
        return (jnp.sum(out[0]), out[1]) if has_aux else jnp.sum(out)

    if has_aux:
        grad, aux = jax.grad(critic_sum, has_aux=True)(x_hat)
    else:
        grad, aux = jax.grad(critic_sum)(x_hat), None
    norm = jnp.sqrt(jnp.sum(jnp.square(grad), axis=1) + GP_NORM_EPS)
    penalty = jnp.mean(jnp.square(norm - 1.0))
    return (penalty, aux) if has_aux else penalty


def d_output(loss: Loss, logits):
    """What train_step reports for D: sigmoid(logits) for sigmoid losses, the critic value otherwise."""
    return jax.nn.sigmoid(logits) if loss.name in SIGMOID_LOSSES else logits
