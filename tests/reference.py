"""The one numpy reference the backend contract is checked against (tests/test_backend_contract.py).

Everything here is float64 numpy written from the spec's own words (common/spec.py's docstrings, the loss and
optimiser formulas in README), never from the code under test: the MLP forward pass, the losses, the spec
optimisers, the gradient penalty's input gradient, and a whole training step (``ReferenceGAN``) with its
gradients derived by hand. The step reference is what makes a bug in the shared schedule visible: parity
between two backends cannot, since both run the same common/trainer.py.
"""
from __future__ import annotations

import numpy as np

from common.spec import GAN, MLP, SIGMOID_LOSSES

ACTIVATIONS = {
    "relu": lambda h, slope: np.maximum(h, 0.0),
    "leaky_relu": lambda h, slope: np.where(h > 0, h, slope * h),
    "tanh": lambda h, slope: np.tanh(h),
    "sigmoid": lambda h, slope: 1.0 / (1.0 + np.exp(-h)),
    "linear": lambda h, slope: h,
}


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
    """PyTorch's Adam (the spec's): eps added to the bias-corrected sqrt(v)."""
    m, v = np.zeros_like(w), np.zeros_like(w)
    for t in range(1, updates + 1):
        g = grad_fn(w)
        m = opt.beta1 * m + (1 - opt.beta1) * g
        v = opt.beta2 * v + (1 - opt.beta2) * g * g
        w = w - (opt.lr / (1 - opt.beta1 ** t)) * m / (np.sqrt(v) / np.sqrt(1 - opt.beta2 ** t) + opt.eps)
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
            w -= (o.lr / (1 - o.beta1 ** self.t)) * m / (np.sqrt(v) / np.sqrt(1 - o.beta2 ** self.t) + o.eps)


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
