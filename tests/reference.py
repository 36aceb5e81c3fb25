"""The one numpy reference the backend contract is checked against (tests/test_backend_contract.py).

Everything here is float64 numpy written from the spec's own words (common/spec.py's docstrings, the loss and
optimiser formulas in README), never from the code under test: the MLP forward pass, the losses, the spec
optimisers, the gradient penalty's input gradient, and a whole training step (``ReferenceGAN``) with its
gradients derived by hand. The step reference is what makes a bug in the shared schedule visible: parity
between two backends cannot, since both run the same common/trainer.py.
"""
from __future__ import annotations

import numpy as np

from common.rounding import ACTIVATIONS  # the activations as the spec defines them
from common.spec import GAN, MLP, SIGMOID_LOSSES


def mlp_forward(weights, mlp: MLP, x, apply_output: bool = True) -> np.ndarray:
    """The MLP in float64 from neutral weights [k0, b0, k1, b1, ...] (kernels (in, out))."""
    h = np.asarray(x, np.float64)
    layers = len(weights) // 2
    for i in range(layers):
        h = h @ weights[2 * i].astype(np.float64) + weights[2 * i + 1].astype(np.float64)
        if i < layers - 1:
            h = ACTIVATIONS[mlp.hidden_activation](h, mlp.leaky_slope)
        elif apply_output:
            h = ACTIVATIONS[mlp.output_activation](h, mlp.leaky_slope)
    return h


def softplus(x):
    return np.logaddexp(0.0, x)


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def loss_terms(name: str, l_r, l_f) -> tuple[float, float, float]:
    """(real term, fake term, L_G) from D's raw outputs (logits for the sigmoid losses), README's formulas."""
    if name in SIGMOID_LOSSES:
        real, fake = softplus(-l_r).mean(), softplus(l_f).mean()
        g = -softplus(l_f).mean() if name == "minimax" else softplus(-l_f).mean()
    elif name in ("wasserstein", "wgan-gp"):
        real, fake, g = -l_r.mean(), l_f.mean(), -l_f.mean()
    elif name == "hinge":
        real, fake, g = np.maximum(1 - l_r, 0).mean(), np.maximum(1 + l_f, 0).mean(), -l_f.mean()
    else:  # least-squares
        real, fake, g = 0.5 * ((l_r - 1) ** 2).mean(), 0.5 * (l_f ** 2).mean(), 0.5 * ((l_f - 1) ** 2).mean()
    return real, fake, g


def d_loss(name: str, l_r, l_f, d_average=False, gp_weight=10.0, penalty=0.0) -> float:
    real, fake, _ = loss_terms(name, l_r, l_f)
    total = (real + fake) / 2 if d_average else real + fake
    return total + (gp_weight * penalty if name == "wgan-gp" else 0.0)


def g_loss(name: str, l_f) -> float:
    return loss_terms(name, l_f, l_f)[2]


def adam(opt, w, grad_fn, updates: int):
    """The spec Adam: eps_t (common/spec.py Optimizer.eps_at) added to the bias-corrected sqrt(v)."""
    m, v = np.zeros_like(w), np.zeros_like(w)
    for t in range(1, updates + 1):
        g = grad_fn(w)
        m = opt.beta1 * m + (1 - opt.beta1) * g
        v = opt.beta2 * v + (1 - opt.beta2) * g * g
        w = w - (opt.lr / (1 - opt.beta1 ** t)) * m / (np.sqrt(v) / np.sqrt(1 - opt.beta2 ** t) + opt.eps_at(t))
    return w


def rmsprop(opt, w, grad_fn, updates: int):
    v = np.zeros_like(w)
    for _ in range(updates):
        g = grad_fn(w)
        v = opt.alpha * v + (1 - opt.alpha) * g * g
        w = w - opt.lr * g / (np.sqrt(v) + opt.eps)
    return w


def tanh_critic_input_gradient(weights, x) -> np.ndarray:
    """dD/dx per example for a one-hidden-layer tanh critic D = tanh(x K0 + b0) K1 + b1."""
    k0, b0, k1 = (w.astype(np.float64) for w in weights[:3])
    return ((1 - np.tanh(x @ k0 + b0) ** 2) * k1[:, 0]) @ k0.T


# ----------------------------------------------------------------------------- a whole training step


class TanhMLP:
    """A one-hidden-layer tanh MLP with a linear output, its gradients derived by hand (float64)."""

    def __init__(self, weights):
        self.w = [np.asarray(w, np.float64).copy() for w in weights]  # [K0, b0, K1, b1]

    def forward(self, x):
        h = np.tanh(x @ self.w[0] + self.w[1])
        return h, h @ self.w[2] + self.w[3]

    def backward(self, x, h, dy):
        """Gradients of the weights and of the input, given dL/d(output) ``dy``."""
        da = (dy @ self.w[2].T) * (1 - h ** 2)
        grads = [x.T @ da, da.sum(0), h.T @ dy, dy.sum(0)]
        return grads, da @ self.w[0].T


class Adam:
    def __init__(self, opt, weights):
        self.opt, self.t = opt, 0
        self.m = [np.zeros_like(w) for w in weights]
        self.v = [np.zeros_like(w) for w in weights]

    def apply(self, weights, grads):
        o = self.opt
        self.t += 1
        for w, g, m, v in zip(weights, grads, self.m, self.v):
            m += (1 - o.beta1) * (g - m)
            v *= o.beta2
            v += (1 - o.beta2) * g * g
            w -= (o.lr / (1 - o.beta1 ** self.t)) * m / (np.sqrt(v) / np.sqrt(1 - o.beta2 ** self.t) + o.eps_at(self.t))


class ReferenceGAN:
    """One training step per the spec's update semantics (common/spec.py's module docstring), in float64.

    Supports what the schedule test needs: tanh hidden layers, the nonsaturating and wasserstein losses, Adam,
    every order, d_steps and reuse_fake. Each D update is: D's gradient at the current weights on real[k] and
    a fake batch that carries no gradient, then the update, then (wasserstein) the clip.
    """

    def __init__(self, spec: GAN, weights):
        assert spec.loss.name in ("nonsaturating", "wasserstein") and spec.d_optimizer.name == "adam"
        self.spec = spec
        self.g, self.d = TanhMLP(weights["generator"]), TanhMLP(weights["discriminator"])
        self.g_opt, self.d_opt = Adam(spec.g_optimizer, self.g.w), Adam(spec.d_optimizer, self.d.w)

    def output(self, logits):
        return sigmoid(logits) if self.spec.loss.name in SIGMOID_LOSSES else logits

    def d_gradients(self, real, fake):
        n, sigmoid_loss = len(real), self.spec.loss.name in SIGMOID_LOSSES
        h_r, l_r = self.d.forward(real)
        h_f, l_f = self.d.forward(fake)
        # d/dl of mean softplus(-l_r) + mean softplus(l_f), or of -mean l_r + mean l_f
        dl_r = -sigmoid(-l_r) / n if sigmoid_loss else -np.ones_like(l_r) / n
        dl_f = sigmoid(l_f) / n if sigmoid_loss else np.ones_like(l_f) / n
        g_r, _ = self.d.backward(real, h_r, dl_r)
        g_f, _ = self.d.backward(fake, h_f, dl_f)
        loss = d_loss(self.spec.loss.name, l_r[:, 0], l_f[:, 0])
        return ([a + b for a, b in zip(g_r, g_f)],
                (loss, self.output(l_r).mean(), self.output(l_f).mean()))

    def g_gradients(self, noise):
        n = len(noise)
        h_g, fake = self.g.forward(noise)
        h_d, l_f = self.d.forward(fake)
        dl_f = -sigmoid(-l_f) / n if self.spec.loss.name in SIGMOID_LOSSES else -np.ones_like(l_f) / n
        _, d_fake = self.d.backward(fake, h_d, dl_f)  # through D, into G only
        grads, _ = self.g.backward(noise, h_g, d_fake)
        return grads, g_loss(self.spec.loss.name, l_f[:, 0]), fake

    def d_update(self, real, fake):
        grads, results = self.d_gradients(real, fake)
        self.d_opt.apply(self.d.w, grads)
        if self.spec.loss.name == "wasserstein":
            for w in self.d.w:
                np.clip(w, -self.spec.loss.clip, self.spec.loss.clip, out=w)
        return results

    def step(self, real, noise) -> dict[str, float]:
        real, noise = np.asarray(real, np.float64), np.asarray(noise, np.float64)
        u = self.spec.updates
        d = u.d_steps
        if u.order == "d_then_g":
            for k in range(d):
                results = self.d_update(real[k], self.g.forward(noise[k])[1])
            grads, gl, _ = self.g_gradients(noise[d - 1] if u.reuse_fake else noise[d])
            self.g_opt.apply(self.g.w, grads)
        elif u.order == "g_then_d":
            grads, gl, fake_before = self.g_gradients(noise[0] if u.reuse_fake else noise[d])
            self.g_opt.apply(self.g.w, grads)
            for k in range(d):
                fake = fake_before if (u.reuse_fake and k == 0) else self.g.forward(noise[k])[1]
                results = self.d_update(real[k], fake)
        else:  # simultaneous: both gradients at the same weights, then both applied
            g_grads, gl, _ = self.g_gradients(noise[0] if u.reuse_fake else noise[1])
            d_grads, results = self.d_gradients(real[0], self.g.forward(noise[0])[1])
            self.d_opt.apply(self.d.w, d_grads)
            if self.spec.loss.name == "wasserstein":
                for w in self.d.w:
                    np.clip(w, -self.spec.loss.clip, self.spec.loss.clip, out=w)
            self.g_opt.apply(self.g.w, g_grads)
        dl, d_real, d_fake = results
        return {"d_loss": dl, "g_loss": gl, "d_real": d_real, "d_fake": d_fake}

    def weights(self) -> dict[str, list[np.ndarray]]:
        return {"generator": [w.copy() for w in self.g.w], "discriminator": [w.copy() for w in self.d.w]}


# ----------------------------------------------------------------------------- layer lists (common.spec.Network)
# NCHW float64, neutral kernels: Dense (in, out), convolutions (kh, kw, in, out). Written from common/spec.py's
# layout comment and layer docstrings: convolutions as sums of shifted products, no framework convention.


# The two contractions are common/rounding.py's (the forward bound runs the same float64 pass beside its errors).
from common.rounding import conv2d, conv_transpose2d  # noqa: E402


def batch_norm_axes(x) -> tuple:
    return (0, 2, 3) if x.ndim == 4 else (0,)


def network_forward(net, weights, x, training=False, masks=None, statistics=None, update_stats=True):
    """A common.spec.Network in float64 on flat or shaped inputs; returns (flat output, new statistics).

    ``statistics``: [mean0, var0, ...] (running values, needed in evaluation and updated in training unless
    ``update_stats`` is False); ``masks``: (B, dropout_units) for training passes."""
    from common.spec import Activation, BatchNorm, Conv2D, ConvTranspose2D, Dense, Dropout, Flatten, Maxout, Reshape

    w = [np.asarray(a, np.float64) for a in weights]
    stats = [np.asarray(a, np.float64).copy() for a in (statistics or [])]
    h = np.asarray(x, np.float64).reshape(len(x), *net.input_shape)
    wi = si = mi = 0
    for info in net.layer_info:
        layer = info.layer
        if isinstance(layer, Dense):
            h = h @ w[wi]
            wi += 1
            if layer.bias:
                h, wi = h + w[wi], wi + 1
        elif isinstance(layer, (Conv2D, ConvTranspose2D)):
            op = conv2d if isinstance(layer, Conv2D) else conv_transpose2d
            h = op(h, w[wi], layer.stride, info.pads)
            wi += 1
            if layer.bias:
                h, wi = h + w[wi][None, :, None, None], wi + 1
        elif isinstance(layer, BatchNorm):
            axes = batch_norm_axes(h)
            shape = (1, -1, 1, 1) if h.ndim == 4 else (1, -1)
            if training:
                mean, var = h.mean(axis=axes), h.var(axis=axes)
                if update_stats:
                    n = h.size // h.shape[1]
                    batch_var = var * n / (n - 1) if layer.running_variance == "unbiased" else var
                    stats[si] = (1 - layer.momentum) * stats[si] + layer.momentum * mean
                    stats[si + 1] = (1 - layer.momentum) * stats[si + 1] + layer.momentum * batch_var
            else:
                mean, var = stats[si], stats[si + 1]
            si += 2
            h = (h - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + layer.eps)
            if layer.affine:
                h = h * w[wi].reshape(shape) + w[wi + 1].reshape(shape)
                wi += 2
        elif isinstance(layer, Activation):
            h = ACTIVATIONS[layer.name](h, layer.slope)
        elif isinstance(layer, Dropout):
            n = int(np.prod(info.in_shape))
            if training and masks is not None:
                h = h * np.asarray(masks, np.float64)[:, mi:mi + n].reshape(h.shape)
            mi += n
        elif isinstance(layer, Reshape):
            h = h.reshape(len(h), *layer.shape)
        elif isinstance(layer, Flatten):
            h = h.reshape(len(h), -1)
        elif isinstance(layer, Maxout):
            h = h.reshape(len(h), -1, layer.pieces).max(axis=2)
    return h.reshape(len(h), -1), stats


# ----------------------------------------------------------------------------- the schedule with BatchNorm and Dropout


class Stack:
    """A Network of Dense, BatchNorm, Activation (tanh, linear) and Dropout layers in float64, trained with batch
    statistics, its gradients derived by hand. ``stats``: [mean0, var0, ...] running statistics, updated per the
    layer's momentum convention and running variance (common.spec.BatchNorm's docstring)."""

    def __init__(self, net, weights, stats):
        self.net = net
        self.w = [np.asarray(w, np.float64).copy() for w in weights]
        self.stats = [np.asarray(s, np.float64).copy() for s in stats]

    def forward(self, x, mask=None, update=True):
        """A training pass; returns (output, cache for backward). ``update`` False: statistics left alone."""
        from common.spec import Activation, BatchNorm, Dense, Dropout, Maxout

        h, cache, wi, si, mi = np.asarray(x, np.float64), [], 0, 0, 0
        for info in self.net.layer_info:
            layer = info.layer
            if isinstance(layer, Dense):
                cache.append(("dense", h, wi, layer.bias))
                h = h @ self.w[wi] + (self.w[wi + 1] if layer.bias else 0.0)
                wi += 2 if layer.bias else 1
            elif isinstance(layer, BatchNorm):
                mean, var = h.mean(0), h.var(0)
                if update:
                    n = len(h)
                    batch_var = var * n / (n - 1) if layer.running_variance == "unbiased" else var
                    self.stats[si] = (1 - layer.momentum) * self.stats[si] + layer.momentum * mean
                    self.stats[si + 1] = (1 - layer.momentum) * self.stats[si + 1] + layer.momentum * batch_var
                si += 2
                inv = 1.0 / np.sqrt(var + layer.eps)
                xhat = (h - mean) * inv
                cache.append(("bn", xhat, inv, wi))
                h = xhat * self.w[wi] + self.w[wi + 1]
                wi += 2
            elif isinstance(layer, Activation):
                assert layer.name in ("tanh", "linear", "relu")
                h = np.tanh(h) if layer.name == "tanh" else np.maximum(h, 0.0) if layer.name == "relu" else h
                cache.append((layer.name, h))
            elif isinstance(layer, Maxout):  # groups of consecutive features; the gradient goes to each argmax
                groups = h.reshape(len(h), -1, layer.pieces)
                winner = groups.argmax(axis=2)
                cache.append(("maxout", winner, layer.pieces))
                h = groups.max(axis=2)
            elif isinstance(layer, Dropout):
                n = info.in_shape[0]
                m = np.ones_like(h) if mask is None else np.asarray(mask, np.float64)[:, mi:mi + n]
                mi += n
                cache.append(("dropout", m))
                h = h * m
        return h, cache

    def backward(self, cache, dy):
        """Gradients of every weight (self.w's order) and of the input, given dL/d(output) ``dy``."""
        grads = [np.zeros_like(w) for w in self.w]
        for entry in reversed(cache):
            kind = entry[0]
            if kind == "dense":
                _, x, wi, bias = entry
                grads[wi] += x.T @ dy
                if bias:
                    grads[wi + 1] += dy.sum(0)
                dy = dy @ self.w[wi].T
            elif kind == "bn":
                _, xhat, inv, wi = entry
                grads[wi] += (dy * xhat).sum(0)
                grads[wi + 1] += dy.sum(0)
                dxhat = dy * self.w[wi]
                n = len(dy)
                dy = inv / n * (n * dxhat - dxhat.sum(0) - xhat * (dxhat * xhat).sum(0))
            elif kind == "tanh":
                dy = dy * (1 - entry[1] ** 2)
            elif kind == "relu":
                dy = dy * (entry[1] > 0)
            elif kind == "maxout":
                _, winner, pieces = entry
                full = np.zeros((*dy.shape, pieces))
                np.put_along_axis(full, winner[..., None], dy[..., None], axis=2)
                dy = full.reshape(len(dy), -1)
            elif kind == "dropout":
                dy = dy * entry[1]
        return grads, dy


class ReferenceBatchNormGAN:
    """One training step per common/spec.py's module docstring, in float64, for G and D made of Dense, BatchNorm,
    tanh, relu, Maxout and (D only) Dropout layers, the nonsaturating loss and Adam: which pass updates which running
    statistics, and which pass takes which dropout mask, written from those words. With ``spec.pack`` m, D's
    passes see the rows of examples reshaped to packs, (rows / m, m * data_dim) (GAN.pack's words)."""

    def __init__(self, spec, weights, stats):
        assert spec.loss.name == "nonsaturating" and spec.d_optimizer.name == "adam"
        self.spec = spec
        self.g = Stack(spec.generator_network, weights["generator"], stats["generator"])
        self.d = Stack(spec.discriminator_network, weights["discriminator"], stats["discriminator"])
        self.g_opt, self.d_opt = Adam(spec.g_optimizer, self.g.w), Adam(spec.d_optimizer, self.d.w)

    def pack(self, x):
        return x.reshape(-1, self.spec.pack * x.shape[1])

    def d_gradients(self, real, fake, mask_real, mask_fake):
        real, fake = self.pack(real), self.pack(fake)
        n = len(real)
        l_r, c_r = self.d.forward(real, mask_real)
        l_f, c_f = self.d.forward(fake, mask_fake)
        g_r, _ = self.d.backward(c_r, -sigmoid(-l_r) / n)
        g_f, _ = self.d.backward(c_f, sigmoid(l_f) / n)
        loss = d_loss("nonsaturating", l_r[:, 0], l_f[:, 0])
        return [a + b for a, b in zip(g_r, g_f)], (loss, sigmoid(l_r).mean(), sigmoid(l_f).mean())

    def g_gradients(self, noise, mask, g_update=True, d_update=True):
        fake, c_g = self.g.forward(noise, update=g_update)
        l_f, c_d = self.d.forward(self.pack(fake), mask, update=d_update)
        _, d_fake = self.d.backward(c_d, -sigmoid(-l_f) / len(l_f))
        grads, _ = self.g.backward(c_g, d_fake.reshape(fake.shape))
        return grads, g_loss("nonsaturating", l_f[:, 0]), fake

    def step(self, real, noise, masks) -> dict[str, float]:
        real, noise = np.asarray(real, np.float64), np.asarray(noise, np.float64)
        u = self.spec.updates
        d = u.d_steps
        masks = [None] * (2 * d + 1) if masks is None else masks  # D without Dropout
        if u.order == "d_then_g":  # masks: 2k real, 2k + 1 fake, 2d G's pass
            for k in range(d):
                fake, _ = self.g.forward(noise[k])
                grads, results = self.d_gradients(real[k], fake, masks[2 * k], masks[2 * k + 1])
                self.d_opt.apply(self.d.w, grads)
            # with reuse_fake G recomputes the last D update's fake: G's statistics move once
            grads, gl, _ = self.g_gradients(noise[d - 1] if u.reuse_fake else noise[d], masks[2 * d],
                                            g_update=not u.reuse_fake)
            self.g_opt.apply(self.g.w, grads)
        elif u.order == "g_then_d":
            grads, gl, fake_before = self.g_gradients(noise[0] if u.reuse_fake else noise[d], masks[2 * d])
            self.g_opt.apply(self.g.w, grads)
            for k in range(d):
                fake = fake_before if (u.reuse_fake and k == 0) else self.g.forward(noise[k])[0]
                grads, results = self.d_gradients(real[k], fake, masks[2 * k], masks[2 * k + 1])
                self.d_opt.apply(self.d.w, grads)
        else:  # simultaneous
            if u.reuse_fake:  # G's D(fake) is D's own fake pass: its mask, and D's update moves the statistics
                g_grads, gl, fake = self.g_gradients(noise[0], masks[1], d_update=False)
            else:
                g_grads, gl, _ = self.g_gradients(noise[1], masks[2])
                fake, _ = self.g.forward(noise[0])
            d_grads, results = self.d_gradients(real[0], fake, masks[0], masks[1])
            self.d_opt.apply(self.d.w, d_grads)
            self.g_opt.apply(self.g.w, g_grads)
        dl, d_real, d_fake = results
        return {"d_loss": dl, "g_loss": gl, "d_real": d_real, "d_fake": d_fake}

    def weights(self) -> dict[str, list[np.ndarray]]:
        return {"generator": [w.copy() for w in self.g.w], "discriminator": [w.copy() for w in self.d.w]}

    def statistics(self) -> dict[str, list[np.ndarray]]:
        return {"generator": [s.copy() for s in self.g.stats], "discriminator": [s.copy() for s in self.d.stats]}
