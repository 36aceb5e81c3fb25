"""The framework-neutral trainer: the spec's step schedule, written once over a backend's primitives.

Like Keras 3's ``Trainer`` (``keras/src/trainers/trainer.py``) with ``TorchTrainer`` / ``TensorFlowTrainer`` on
top: this class holds everything neutral (update order, D steps, reuse of the fake batch, WGAN clipping, GP
wiring, input checks, result keys, phase marks, state and checkpoints); a backend subclass implements only the
primitives below, on its own tensors. ``schedule`` is plain Python control flow over those primitives, so it
traces the same under ``tf.function`` and ``torch.compile``: a compiled step is the traced schedule.

Primitives (tensors in, tensors out; every pass here is a training-mode pass, common/spec.py's rules):
    d_gradients(real, fake, eps, masks=None) -> (L_D, mean D(real), mean D(fake), D's gradients)   at the current
                                    weights; ``fake`` carries no gradient; ``eps`` is None unless wgan-gp; ``masks``
                                    None, or the dropout masks of D's passes on (real, fake, interpolates or None);
                                    every pass updates D's BatchNorm running statistics
    g_gradients(noise, mask=None, g_stats=True, d_stats=True) -> (L_G, G's gradients, the fake batch G made before
                                    its update); ``mask``: D's dropout mask; ``g_stats``/``d_stats`` False: that
                                    network's pass is a recomputation and leaves its running statistics alone
    fake(noise)               -> G(noise), no gradient (D's fake batch); updates G's running statistics
    sample(noise)             -> G(noise) in evaluation mode (running statistics, nothing updated): generate()
    apply_d(grads), apply_g(grads)   one optimiser update of D / G
    clip_d(clip)              clamp every D weight to [-clip, clip] (WGAN)
    pack(x)                   (rows, data_dim) -> (rows / pack, pack * data_dim): D's input (common/spec.py GAN.pack)
    stack(values)             a (4,) tensor of the step's four results
    to_tensor(array), to_numpy(tensor), sync()
    run_step(tensors) -> (4,) numpy; run_steps(tensors) -> (K, 4) numpy: how the mode runs the schedule
    discriminator_output(x)   D's reported output (probability for sigmoid losses, else critic value), evaluation mode
    optimizer_state(network) -> (t, moments), load_optimizer_state(network, t, moments)   neutral layout
Packing (``spec.pack`` > 1): ``real``, ``fake`` and ``noise`` hold batch * pack rows; every primitive that runs D
reshapes its data rows to (batch, pack * data_dim) first (``pack`` above), so GP coefficients, dropout masks and
D's results are per pack. With pack 1 nothing is reshaped.
and as attributes: ``generator`` and ``discriminator`` (the networks) and ``models``, the backend's models module
(``export_weights(net)`` / ``load_weights(net, arrays)``, ``export_statistics(net)`` / ``load_statistics(net,
arrays)`` in the neutral layout).
"""
from __future__ import annotations

import time

import numpy as np

from common import checkpoint
from common.backend import STEP_KEYS
from common.spec import GAN, dropout_pass


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
        self.dropout_units = spec.discriminator_network.dropout_units  # 0: D has no Dropout, no masks

    # ---- the step schedule, on tensors --------------------------------------------------------------
    def _apply_d_clipped(self, grads) -> None:
        self.apply_d(grads)
        if self.spec.loss.name == "wasserstein":
            self.clip_d(self.spec.loss.clip)

    def _d_update(self, real, fake, eps, masks):
        loss, d_real, d_fake, grads = self.d_gradients(real, fake, eps, masks)
        self._apply_d_clipped(grads)
        return loss, d_real, d_fake

    def schedule(self, real, noise, gp_eps, dropout=None, mark=no_mark):
        """One step per ``spec.updates`` (semantics in common/spec.py); returns stack([d_loss, g_loss, d_real, d_fake]).

        ``real`` is (d_steps, rows, data_dim), ``noise`` (d_steps + 1, rows, latent_dim), rows = batch * pack
        (spec.examples_per_batch; the primitives pack rows for D, common/spec.py GAN.pack): noise[k] feeds D step k,
        noise[d_steps] feeds G unless reuse_fake gives G the adjacent D step's. ``dropout`` (None without Dropout)
        is (dropout_passes, batch, units): which pass takes which mask, and which passes are recomputations that
        leave the BatchNorm statistics alone, is common/spec.py's module docstring. D's results are those of its
        last update. ``mark(phase)`` is called as each stretch ends; only time_phases passes one, the math is the
        same.
        """
        spec = self.spec
        updates = spec.updates
        d, reuse = updates.d_steps, updates.reuse_fake

        def eps(k):
            return gp_eps[k] if self.uses_gp else None

        def d_masks(k):
            if dropout is None:
                return None
            return (dropout[dropout_pass(spec, k, "real")], dropout[dropout_pass(spec, k, "fake")],
                    dropout[dropout_pass(spec, k, "gp")] if self.uses_gp else None)

        g_mask = None if dropout is None else dropout[dropout_pass(spec, 0, "g")]
        if updates.order == "simultaneous":
            if reuse:  # D trains on the very batch G is trained through; D's own update makes the D(fake) pass
                g_loss, g_grads, fake = self.g_gradients(noise[0], g_mask, d_stats=False)
            else:
                g_loss, g_grads, _ = self.g_gradients(noise[1], g_mask)
            mark("g_update")
            if not reuse:
                fake = self.fake(noise[0])
            d_loss, d_real, d_fake, d_grads = self.d_gradients(real[0], fake, eps(0), d_masks(0))
            self._apply_d_clipped(d_grads)
            mark("d_update")
            self.apply_g(g_grads)
            mark("g_update")
        elif updates.order == "d_then_g":
            for k in range(d):
                d_loss, d_real, d_fake = self._d_update(real[k], self.fake(noise[k]), eps(k), d_masks(k))
            mark("d_update")
            # With reuse_fake, G's forward recomputes the last D update's fake batch (same weights, same noise).
            g_loss, g_grads, _ = self.g_gradients(noise[d - 1] if reuse else noise[d], g_mask, g_stats=not reuse)
            self.apply_g(g_grads)
            mark("g_update")
        else:  # g_then_d
            g_loss, g_grads, fake_before = self.g_gradients(noise[0] if reuse else noise[d], g_mask)
            self.apply_g(g_grads)
            mark("g_update")
            for k in range(d):
                fake = fake_before if (reuse and k == 0) else self.fake(noise[k])
                d_loss, d_real, d_fake = self._d_update(real[k], fake, eps(k), d_masks(k))
            mark("d_update")
        return self.stack([d_loss, g_loss, d_real, d_fake])

    # ---- the public interface (common.backend.Trainer), numpy in and out ------------------------------
    def _tensors(self, real, noise, gp_eps, stacked: bool, dropout=None) -> list:
        """[real, noise, gp_eps or None, dropout or None] as tensors, after checking every shape against the spec."""
        spec = self.spec
        d = spec.updates.d_steps
        lead = (np.shape(real)[0],) if stacked else ()
        rows = spec.examples_per_batch  # batch_size packs of spec.pack examples (common/spec.py GAN.pack)
        expected = {"real": lead + (d, rows, spec.data_dim),
                    "noise": lead + (d + 1, rows, spec.latent_dim)}
        arrays = {"real": real, "noise": noise}
        if self.uses_gp:
            if gp_eps is None:
                raise ValueError("wgan-gp needs gp_eps")
            expected["gp_eps"] = lead + (d, spec.batch_size)
            arrays["gp_eps"] = gp_eps
        if self.dropout_units:
            if dropout is None:
                raise ValueError("this discriminator has Dropout: train_step needs its dropout masks")
            expected["dropout"] = lead + (spec.dropout_passes, spec.batch_size, self.dropout_units)
            arrays["dropout"] = dropout
        elif dropout is not None:
            raise ValueError("dropout masks given, but this discriminator has no Dropout")
        for name, value in arrays.items():
            if tuple(np.shape(value)) != expected[name]:
                raise ValueError(f"{name} has shape {np.shape(value)}, expected {expected[name]}")
        tensors = {name: self.to_tensor(value) for name, value in arrays.items()}
        return [tensors.get(name) for name in ("real", "noise", "gp_eps", "dropout")]

    def train_step(self, real, noise, gp_eps=None, dropout=None) -> dict[str, float]:
        result = self.run_step(self._tensors(real, noise, gp_eps, stacked=False, dropout=dropout))
        return {key: float(value) for key, value in zip(STEP_KEYS, result)}

    def train_steps(self, real, noise, gp_eps=None, dropout=None) -> dict[str, np.ndarray]:
        result = self.run_steps(self._tensors(real, noise, gp_eps, stacked=True, dropout=dropout))
        return {key: result[:, index] for index, key in enumerate(STEP_KEYS)}

    def time_phases(self, real, noise, gp_eps=None, dropout=None) -> dict[str, float]:
        """One train_step (same math, same resulting state) with its D update(s) and its G update timed apart,
        the device synchronised at each boundary: {"d_update": seconds, "g_update": seconds}."""
        tensors = self._tensors(real, noise, gp_eps, stacked=False, dropout=dropout)
        clock = PhaseClock(self.sync)
        self.schedule(*tensors, mark=clock.mark)
        return clock.seconds

    def generate(self, noise) -> np.ndarray:
        """(n, latent_dim) -> (n, data_dim) float32, G in evaluation mode (BatchNorm's running statistics): each
        sample depends on its own noise only, and generating changes no state."""
        return self.to_numpy(self.sample(self.to_tensor(noise)))

    def discriminate(self, x) -> np.ndarray:
        """(n, data_dim) -> (n / pack,) float32 D output, evaluation mode: one per pack of consecutive rows."""
        if np.shape(x)[0] % self.spec.pack:
            raise ValueError(f"x has {np.shape(x)[0]} rows, expected a multiple of pack = {self.spec.pack}")
        return self.to_numpy(self.discriminator_output(self.to_tensor(x)))

    # ---- weights, state and checkpoints -------------------------------------------------------------
    def get_weights(self) -> dict[str, list[np.ndarray]]:
        """Neutral layout: {"generator": [k0, b0, ...], "discriminator": [...]}, kernels (in, out)."""
        return {network: self.models.export_weights(getattr(self, network)) for network in checkpoint.NETWORKS}

    def set_weights(self, weights: dict[str, list[np.ndarray]]) -> None:
        for network in checkpoint.NETWORKS:
            self.models.load_weights(getattr(self, network), weights[network])

    def get_statistics(self) -> dict[str, list[np.ndarray]]:
        """BatchNorm running statistics: {"generator": [mean0, var0, ...], "discriminator": [...]} (may be empty)."""
        return {network: self.models.export_statistics(getattr(self, network)) for network in checkpoint.NETWORKS}

    def set_statistics(self, statistics: dict[str, list[np.ndarray]]) -> None:
        for network in checkpoint.NETWORKS:
            self.models.load_statistics(getattr(self, network), statistics[network])

    def state(self) -> dict[str, np.ndarray]:
        """Weights, BatchNorm statistics and both optimisers' state in the neutral layout (common/checkpoint.py)."""
        weights, statistics = self.get_weights(), self.get_statistics()
        state = {}
        for network in checkpoint.NETWORKS:
            state.update({f"{network}/{i}": value for i, value in enumerate(weights[network])})
            state.update({f"stats/{network}/{i}": value for i, value in enumerate(statistics[network])})
            t, moments = self.optimizer_state(network)
            state[f"opt/{network}/t"] = np.array(t, dtype=np.int64)
            for key, values in moments.items():
                state.update({f"opt/{network}/{key}/{i}": value for i, value in enumerate(values)})
        return state

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        """Restore what ``state()`` returned (from this backend or the other)."""
        self.set_weights({network: checkpoint.numbered(state, f"{network}/") for network in checkpoint.NETWORKS})
        self.set_statistics({network: checkpoint.numbered(state, f"stats/{network}/") for network in checkpoint.NETWORKS})
        for network in checkpoint.NETWORKS:
            _, own = self.optimizer_state(network)
            moments = {key: checkpoint.numbered(state, f"opt/{network}/{key}/") for key in own}
            self.load_optimizer_state(network, int(state[f"opt/{network}/t"]), moments)

    def save(self, path) -> None:
        """Networks and both optimisers' state to one .npz (neutral layout), written atomically."""
        checkpoint.save(path, self.spec, self.state())

    def load(self, path) -> None:
        self.load_state(checkpoint.load(path, self.spec))
