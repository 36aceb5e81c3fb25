"""The six GAN losses and the WGAN-GP penalty, from D's logits (formulas in the brief / common.spec).

softplus is written out (max(x, 0) + log1p(exp(-|x|))) instead of tf.nn.softplus or Keras' BCE, whose
thresholds differ from PyTorch's: both backends evaluate the very same expression.
"""
from __future__ import annotations

import tensorflow as tf

from common.losses import combine_d_loss
from common.spec import GP_NORM_EPS, SIGMOID_LOSSES, Loss


def softplus(x):
    return tf.maximum(x, 0.0) + tf.math.log1p(tf.exp(-tf.abs(x)))


def d_loss_terms(loss: Loss, l_r, l_f):
    """(real term, fake term) of L_D; their sum (or mean, with d_average) is L_D without the penalty."""
    name = loss.name
    if name in SIGMOID_LOSSES:
        return tf.reduce_mean(softplus(-l_r)), tf.reduce_mean(softplus(l_f))
    if name in ("wasserstein", "wgan-gp"):
        return -tf.reduce_mean(l_r), tf.reduce_mean(l_f)
    if name == "hinge":
        return tf.reduce_mean(tf.nn.relu(1.0 - l_r)), tf.reduce_mean(tf.nn.relu(1.0 + l_f))
    if name == "least-squares":
        return 0.5 * tf.reduce_mean(tf.square(l_r - 1.0)), 0.5 * tf.reduce_mean(tf.square(l_f))
    raise ValueError(f"loss {name!r} is unknown")


def d_loss(loss: Loss, l_r, l_f, penalty=None):
    """L_D from logits l_r = D(real), l_f = D(fake), both (B,); ``penalty`` is wgan-gp's mean penalty."""
    return combine_d_loss(loss, *d_loss_terms(loss, l_r, l_f), penalty)


def g_loss(loss: Loss, l_f):
    name = loss.name
    if name == "minimax":
        return -tf.reduce_mean(softplus(l_f))
    if name == "nonsaturating":
        return tf.reduce_mean(softplus(-l_f))
    if name == "least-squares":
        return 0.5 * tf.reduce_mean(tf.square(l_f - 1.0))
    return -tf.reduce_mean(l_f)  # wasserstein, wgan-gp, hinge


def gradient_penalty(discriminator, real, fake, eps):
    """mean over examples of (sqrt(sum_j (dD(x_hat)/dx_hat_j)^2 + GP_NORM_EPS) - 1)^2.

    x_hat = eps * real + (1 - eps) * fake with one eps per example, (B,). Call it inside the outer tape
    that differentiates D's loss: the inner tape's gradient is then itself differentiated (second order).
    """
    eps = tf.reshape(eps, (-1, 1))
    x_hat = eps * real + (1.0 - eps) * fake
    with tf.GradientTape() as tape:
        tape.watch(x_hat)
        critic = discriminator(x_hat)
    # Examples are independent, so the gradient of the sum is each example's own gradient.
    grad = tape.gradient(critic, x_hat)
    norm = tf.sqrt(tf.reduce_sum(tf.square(grad), axis=1) + GP_NORM_EPS)
    return tf.reduce_mean(tf.square(norm - 1.0))


def d_output(loss: Loss, logits):
    """What train_step reports for D: sigmoid(logits) for sigmoid losses, the critic value otherwise."""
    return tf.sigmoid(logits) if loss.name in SIGMOID_LOSSES else logits
