"""The framework-neutral trainer: the spec's step schedule, written once over a backend's primitives.

Like Keras 3's ``Trainer`` (``keras/src/trainers/trainer.py``) with ``TorchTrainer`` / ``TensorFlowTrainer`` on
top: this class holds everything neutral (update order, D steps, reuse of the fake batch, WGAN clipping, GP
wiring, input checks, result keys, phase marks, state and checkpoints); a backend subclass implements only the
primitives below, on its own tensors. ``schedule`` is plain Python control flow over those primitives, so it
traces the same under ``tf.function`` and ``torch.compile``: a compiled step is the traced schedule.

Primitives (tensors in, tensors out):
    d_gradients(real, fake, eps) -> (L_D, mean D(real), mean D(fake), D's gradients)   at the current weights;
                                    ``fake`` carries no gradient; ``eps`` is None unless wgan-gp
    g_gradients(noise)        -> (L_G, G's gradients, the fake batch G made before its update)
    fake(noise)               -> G(noise), no gradient (D's fake batch)
    apply_d(grads), apply_g(grads)   one optimiser update of D / G
    clip_d(clip)              clamp every D weight to [-clip, clip] (WGAN)
    stack(values)             a (4,) tensor of the step's four results
    to_tensor(array), to_numpy(tensor), sync()
    run_step(tensors) -> (4,) numpy; run_steps(tensors) -> (K, 4) numpy: how the mode runs the schedule
    discriminator_output(x)   D's reported output (probability for sigmoid losses, else critic value)
    optimizer_state(network) -> (t, moments), load_optimizer_state(network, t, moments)   neutral layout
and as attributes: ``generator`` and ``discriminator`` (the networks) and ``models``, the backend's models module
(``export_weights(net)`` / ``load_weights(net, arrays)`` in the neutral layout).
"""
from __future__ import annotations

import time

import numpy as np

from common import checkpoint
from common.backend import STEP_KEYS
from common.spec import GAN


def no_mark(phase: str) -> None:
    pass


class PhaseClock:
    """Charges the time since the previous mark to the phase that just ended ("d_update" or "g_update").

    ``sync`` waits for the device, so the clock includes its work (a no-op where calls return when done)."""

    def __init__(self, sync=lambda: None):
        self.sync = sync
        self.seconds = {"d_update": 0.0, "g_update": 0.0}
        self.sync()
        self.last = time.perf_counter()

    def mark(self, phase: str) -> None:
        self.sync()
        now = time.perf_counter()
        self.seconds[phase] += now - self.last
        self.last = now


class Trainer:
    """One GAN per the spec, over a backend's primitives (see the module docstring)."""

    def __init__(self, spec: GAN, mode: str):
        self.spec = spec
        self.mode = mode
        self.uses_gp = spec.loss.name == "wgan-gp"

    # ---- the step schedule, on tensors --------------------------------------------------------------
    def _apply_d_clipped(self, grads) -> None:
        self.apply_d(grads)
        if self.spec.loss.name == "wasserstein":
            self.clip_d(self.spec.loss.clip)

    def _d_update(self, real, fake, eps):
        loss, d_real, d_fake, grads = self.d_gradients(real, fake, eps)
        self._apply_d_clipped(grads)
        return loss, d_real, d_fake

    def schedule(self, real, noise, gp_eps, mark=no_mark):
        """One step per ``spec.updates`` (semantics in common/spec.py); returns stack([d_loss, g_loss, d_real, d_fake]).

        ``real`` is (d_steps, batch, data_dim), ``noise`` (d_steps + 1, batch, latent_dim): noise[k] feeds D step k,
        noise[d_steps] feeds G unless reuse_fake gives G the adjacent D step's. D's results are those of its last
        update. ``mark(phase)`` is called as each stretch ends; only time_phases passes one, the math is the same.
        """
        updates = self.spec.updates
        d = updates.d_steps

        def eps(k):
            return gp_eps[k] if self.uses_gp else None

        if updates.order == "simultaneous":
            if updates.reuse_fake:  # D trains on the very batch G is trained through
                g_loss, g_grads, fake = self.g_gradients(noise[0])
            else:
                g_loss, g_grads, _ = self.g_gradients(noise[1])
            mark("g_update")
            if not updates.reuse_fake:
                fake = self.fake(noise[0])
            d_loss, d_real, d_fake, d_grads = self.d_gradients(real[0], fake, eps(0))
            self._apply_d_clipped(d_grads)
            mark("d_update")
            self.apply_g(g_grads)
            mark("g_update")
        elif updates.order == "d_then_g":
            for k in range(d):
                d_loss, d_real, d_fake = self._d_update(real[k], self.fake(noise[k]), eps(k))
            mark("d_update")
            g_loss, g_grads, _ = self.g_gradients(noise[d - 1] if updates.reuse_fake else noise[d])
            self.apply_g(g_grads)
            mark("g_update")
        else:  # g_then_d
            g_loss, g_grads, fake_before = self.g_gradients(noise[0] if updates.reuse_fake else noise[d])
            self.apply_g(g_grads)
            mark("g_update")
            for k in range(d):
                fake = fake_before if (updates.reuse_fake and k == 0) else self.fake(noise[k])
                d_loss, d_real, d_fake = self._d_update(real[k], fake, eps(k))
            mark("d_update")
        return self.stack([d_loss, g_loss, d_real, d_fake])

    # ---- the public interface (common.backend.Trainer), numpy in and out ------------------------------
    def _tensors(self, real, noise, gp_eps, stacked: bool) -> list:
        """[real, noise, gp_eps or None] as tensors, after checking every shape against the spec."""
        spec = self.spec
        d = spec.updates.d_steps
        lead = (np.shape(real)[0],) if stacked else ()
        expected = {"real": lead + (d, spec.batch_size, spec.data_dim),
                    "noise": lead + (d + 1, spec.batch_size, spec.latent_dim)}
        arrays = {"real": real, "noise": noise}
        if self.uses_gp:
            if gp_eps is None:
                raise ValueError("wgan-gp needs gp_eps")
            expected["gp_eps"] = lead + (d, spec.batch_size)
            arrays["gp_eps"] = gp_eps
        for name, value in arrays.items():
            if tuple(np.shape(value)) != expected[name]:
                raise ValueError(f"{name} has shape {np.shape(value)}, expected {expected[name]}")
        tensors = [self.to_tensor(value) for value in arrays.values()]
        return tensors if self.uses_gp else tensors + [None]

    def train_step(self, real, noise, gp_eps=None) -> dict[str, float]:
        result = self.run_step(self._tensors(real, noise, gp_eps, stacked=False))
        return {key: float(value) for key, value in zip(STEP_KEYS, result)}

    def train_steps(self, real, noise, gp_eps=None) -> dict[str, np.ndarray]:
        result = self.run_steps(self._tensors(real, noise, gp_eps, stacked=True))
        return {key: result[:, index] for index, key in enumerate(STEP_KEYS)}

    def time_phases(self, real, noise, gp_eps=None) -> dict[str, float]:
        """One train_step (same math, same resulting state) with its D update(s) and its G update timed apart,
        the device synchronised at each boundary: {"d_update": seconds, "g_update": seconds}."""
        tensors = self._tensors(real, noise, gp_eps, stacked=False)
        clock = PhaseClock(self.sync)
        self.schedule(*tensors, mark=clock.mark)
        return clock.seconds

    def generate(self, noise) -> np.ndarray:
        """(n, latent_dim) -> (n, data_dim) float32."""
        return self.to_numpy(self.fake(self.to_tensor(noise)))

    def discriminate(self, x) -> np.ndarray:
        """(n, data_dim) -> (n,) float32 D output."""
        return self.to_numpy(self.discriminator_output(self.to_tensor(x)))

    # ---- weights, state and checkpoints -------------------------------------------------------------
    def get_weights(self) -> dict[str, list[np.ndarray]]:
        """Neutral layout: {"generator": [k0, b0, ...], "discriminator": [...]}, kernels (in, out)."""
        return {network: self.models.export_weights(getattr(self, network)) for network in checkpoint.NETWORKS}

    def set_weights(self, weights: dict[str, list[np.ndarray]]) -> None:
        for network in checkpoint.NETWORKS:
            self.models.load_weights(getattr(self, network), weights[network])

    def state(self) -> dict[str, np.ndarray]:
        """Weights and both optimisers' state in the neutral layout (keys in common/checkpoint.py)."""
        weights = self.get_weights()
        state = {}
        for network in checkpoint.NETWORKS:
            state.update({f"{network}/{i}": value for i, value in enumerate(weights[network])})
            t, moments = self.optimizer_state(network)
            state[f"opt/{network}/t"] = np.array(t, dtype=np.int64)
            for key, values in moments.items():
                state.update({f"opt/{network}/{key}/{i}": value for i, value in enumerate(values)})
        return state

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        """Restore what ``state()`` returned (from this backend or the other)."""
        self.set_weights({network: checkpoint.numbered(state, f"{network}/") for network in checkpoint.NETWORKS})
        for network in checkpoint.NETWORKS:
            _, own = self.optimizer_state(network)
            moments = {key: checkpoint.numbered(state, f"opt/{network}/{key}/") for key in own}
            self.load_optimizer_state(network, int(state[f"opt/{network}/t"]), moments)

    def save(self, path) -> None:
        """Networks and both optimisers' state to one .npz (neutral layout), written atomically."""
        checkpoint.save(path, self.spec, self.state())

    def load(self, path) -> None:
        self.load_state(checkpoint.load(path, self.spec))
