"""The PyTorch Trainer: one GAN step per the spec's update semantics, in eager or compiled mode.

Each update is split in two: a function that computes the loss, the reported D outputs and the gradients
at the current weights (``_d_gradients`` / ``_g_gradients``), and the optimiser's in-place update. The
modes differ only in how the gradient functions run: op by op (eager) or as one torch.compile'd graph each
(compiled: forward, loss and ``torch.autograd.grad`` traced together, with dynamo's trace_autograd_ops).
The optimiser updates and fake batches for D (a no-grad G forward) stay op by op in both modes, so the
optimisers are the very same code whatever the mode.
"""
from __future__ import annotations

import json
import os
import tempfile
import time

import numpy as np
import torch

from backend_torch import losses, models, optim
from common.spec import GAN

NETWORKS = ("generator", "discriminator")
# Fields that fix the shapes of the weights and of the optimiser state: a checkpoint must match them.
CHECKPOINT_FIELDS = ("latent_dim", "data_shape", "generator", "discriminator")
RESULT_KEYS = ("d_loss", "g_loss", "d_real", "d_fake")


def _no_mark(phase: str) -> None:
    pass


class Trainer:
    def __init__(self, spec: GAN, weights: dict, device: torch.device, mode: str):
        self.spec = spec
        self.device = device
        self.mode = mode
        self.uses_gp = spec.loss.name == "wgan-gp"
        self.generator = models.build_generator(spec).to(device)
        self.discriminator = models.build_discriminator(spec).to(device)
        self.set_weights(weights)
        self.g_params = list(self.generator.parameters())
        self.d_params = list(self.discriminator.parameters())
        self.g_opt = optim.make_optimizer(spec.g_optimizer, self.g_params)
        self.d_opt = optim.make_optimizer(spec.d_optimizer, self.d_params)
        self._d_grads_fn, self._g_grads_fn = self._d_gradients, self._g_gradients
        if mode == "compiled":
            self._d_grads_fn = _compiled(self._d_gradients)
            self._g_grads_fn = _compiled(self._g_gradients)

    # ---- the step, on tensors --------------------------------------------------------------------
    def _d_gradients(self, real, fake, eps):
        """L_D, reported D outputs and D's gradient at the current weights (fake carries no gradient)."""
        loss_spec = self.spec.loss
        fake = fake.detach()
        l_r = self.discriminator(real)[:, 0]
        l_f = self.discriminator(fake)[:, 0]
        penalty = losses.gradient_penalty(self.discriminator, real, fake, eps) if self.uses_gp else None
        loss = losses.d_loss(loss_spec, l_r, l_f, penalty)
        grads = torch.autograd.grad(loss, self.d_params)
        d_real = losses.d_output(loss_spec, l_r).mean()
        d_fake = losses.d_output(loss_spec, l_f).mean()
        return loss.detach(), d_real.detach(), d_fake.detach(), grads

    def _g_gradients(self, noise):
        """L_G, G's gradient only (not D's) at the current weights, and the fake batch G made before its update."""
        fake = self.generator(noise)
        loss = losses.g_loss(self.spec.loss, self.discriminator(fake)[:, 0])
        grads = torch.autograd.grad(loss, self.g_params)
        return loss.detach(), grads, fake.detach()

    def _fake(self, noise):
        with torch.no_grad():
            return self.generator(noise)

    def _apply_d(self, grads):
        self.d_opt.apply(grads)
        if self.spec.loss.name == "wasserstein":
            clip = self.spec.loss.clip
            with torch.no_grad():
                for param in self.d_params:
                    param.clamp_(-clip, clip)

    def _d_update(self, real, fake, eps):
        loss, d_real, d_fake, grads = self._d_grads_fn(real, fake, eps)
        self._apply_d(grads)
        return loss, d_real, d_fake

    def _step(self, real, noise, gp_eps, mark=_no_mark):
        """One step; returns [d_loss, g_loss, d_real, d_fake] as a (4,) float32 tensor (no host sync).

        ``mark(phase)`` is called as each stretch of the step ends ("d_update" or "g_update"); only
        time_phases passes one, the math is the same either way.
        """
        updates = self.spec.updates
        d = updates.d_steps

        def eps(k):
            return gp_eps[k] if self.uses_gp else None

        if updates.order == "simultaneous":
            if updates.reuse_fake:  # D trains on the very batch G is trained through
                g_loss, g_grads, fake = self._g_grads_fn(noise[0])
            else:
                g_loss, g_grads, _ = self._g_grads_fn(noise[1])
            mark("g_update")
            if not updates.reuse_fake:
                fake = self._fake(noise[0])
            d_loss, d_real, d_fake, d_grads = self._d_grads_fn(real[0], fake, eps(0))
            self._apply_d(d_grads)
            mark("d_update")
            self.g_opt.apply(g_grads)
            mark("g_update")
        elif updates.order == "d_then_g":
            for k in range(d):
                d_loss, d_real, d_fake = self._d_update(real[k], self._fake(noise[k]), eps(k))
            mark("d_update")
            g_loss, g_grads, _ = self._g_grads_fn(noise[d - 1] if updates.reuse_fake else noise[d])
            self.g_opt.apply(g_grads)
            mark("g_update")
        else:  # g_then_d
            g_loss, g_grads, fake_before = self._g_grads_fn(noise[0] if updates.reuse_fake else noise[d])
            self.g_opt.apply(g_grads)
            mark("g_update")
            for k in range(d):
                fake = fake_before if (updates.reuse_fake and k == 0) else self._fake(noise[k])
                d_loss, d_real, d_fake = self._d_update(real[k], fake, eps(k))
            mark("d_update")
        return torch.stack([d_loss, g_loss, d_real, d_fake])

    # ---- the public interface, numpy in and out -------------------------------------------------
    def _inputs(self, real, noise, gp_eps, stacked: bool):
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
        tensors = [self._tensor(arrays[name]) for name in arrays]
        return tensors if self.uses_gp else tensors + [None]

    def _tensor(self, array) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32)).to(self.device)

    def train_step(self, real, noise, gp_eps=None) -> dict[str, float]:
        result = self._step(*self._inputs(real, noise, gp_eps, stacked=False)).cpu().numpy()
        return {key: float(value) for key, value in zip(RESULT_KEYS, result)}

    def time_phases(self, real, noise, gp_eps=None) -> dict[str, float]:
        """One train_step (same math, same resulting state) with its D update(s) and its G update timed
        apart, the device synchronised at each boundary: {"d_update": seconds, "g_update": seconds}."""
        inputs = self._inputs(real, noise, gp_eps, stacked=False)
        clock = _PhaseClock(self.device)
        self._step(*inputs, mark=clock.mark)
        return clock.seconds

    def train_steps(self, real, noise, gp_eps=None) -> dict[str, np.ndarray]:
        real, noise, gp_eps = self._inputs(real, noise, gp_eps, stacked=True)
        # A Python loop over the same step: results stay on the device until the one conversion at the end.
        results = [self._step(real[i], noise[i], gp_eps[i] if self.uses_gp else None) for i in range(real.shape[0])]
        stacked = torch.stack(results).cpu().numpy() if results else np.zeros((0, 4), np.float32)
        return {key: stacked[:, index] for index, key in enumerate(RESULT_KEYS)}

    def generate(self, noise) -> np.ndarray:
        return self._fake(self._tensor(noise)).cpu().numpy()

    def discriminate(self, x) -> np.ndarray:
        with torch.no_grad():
            logits = self.discriminator(self._tensor(x))[:, 0]
            return losses.d_output(self.spec.loss, logits).cpu().numpy()

    def get_weights(self) -> dict[str, list[np.ndarray]]:
        return {"generator": models.export_weights(self.generator),
                "discriminator": models.export_weights(self.discriminator)}

    def set_weights(self, weights: dict[str, list[np.ndarray]]) -> None:
        models.load_weights(self.generator, weights["generator"])
        models.load_weights(self.discriminator, weights["discriminator"])

    # ---- checkpoints ------------------------------------------------------------------------------
    def save(self, path) -> None:
        """Networks and both optimisers' state to one .npz (neutral keys and layout), written atomically."""
        arrays = {"spec": np.array(json.dumps(self.spec.to_dict(), sort_keys=True))}
        for network, opt in (("generator", self.g_opt), ("discriminator", self.d_opt)):
            for i, value in enumerate(models.export_weights(getattr(self, network))):
                arrays[f"{network}/{i}"] = value
            arrays[f"opt/{network}/t"] = np.array(opt.t, dtype=np.int64)
            for key, tensors in opt.moments().items():
                for i, value in enumerate(models.to_neutral(tensors)):
                    arrays[f"opt/{network}/{key}/{i}"] = value
        folder = os.path.dirname(os.path.abspath(path))
        handle, temporary = tempfile.mkstemp(dir=folder, suffix=".npz.tmp")
        try:
            with os.fdopen(handle, "wb") as file:
                np.savez(file, **arrays)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, path)
        except BaseException:
            os.unlink(temporary)
            raise

    def load(self, path) -> None:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
        saved = json.loads(str(arrays["spec"]))
        mine = json.loads(json.dumps(self.spec.to_dict()))
        mismatches = [f"{field}: checkpoint {saved.get(field)!r}, this trainer {mine[field]!r}"
                      for field in CHECKPOINT_FIELDS if saved.get(field) != mine[field]]
        for opt_field in ("g_optimizer", "d_optimizer"):
            if saved[opt_field]["name"] != mine[opt_field]["name"]:
                mismatches.append(f"{opt_field}.name: checkpoint {saved[opt_field]['name']!r}, "
                                  f"this trainer {mine[opt_field]['name']!r}")
        if mismatches:
            raise ValueError(f"checkpoint {path} does not fit this GAN: " + "; ".join(mismatches))
        weights = {network: _numbered(arrays, f"{network}/") for network in NETWORKS}
        self.set_weights(weights)
        for network, opt in (("generator", self.g_opt), ("discriminator", self.d_opt)):
            params = self.g_params if network == "generator" else self.d_params
            moments = {key: models.from_neutral(_numbered(arrays, f"opt/{network}/{key}/"), params)
                       for key in opt.moments()}
            opt.set_state(int(arrays[f"opt/{network}/t"]), moments)


class _PhaseClock:
    """Charges the time since the previous mark to the phase that just ended (perf_counter, device synced)."""

    def __init__(self, device: torch.device):
        self.device = device
        self.seconds = {"d_update": 0.0, "g_update": 0.0}
        self._sync()
        self.last = time.perf_counter()

    def _sync(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def mark(self, phase: str) -> None:
        self._sync()
        now = time.perf_counter()
        self.seconds[phase] += now - self.last
        self.last = now


def _compiled(function):
    """torch.compile'd ``function`` as one graph: forward, loss and autograd.grad traced together.

    Dynamo breaks the graph at torch.autograd.grad unless trace_autograd_ops is on; it is switched on
    only around these calls (it is read while tracing, which happens on the first call).
    """
    compiled = torch.compile(function, fullgraph=True)

    def call(*args):
        with torch._dynamo.config.patch(trace_autograd_ops=True):
            return compiled(*args)
    return call


def _numbered(arrays: dict, prefix: str) -> list[np.ndarray]:
    """arrays[prefix + "0"], arrays[prefix + "1"], ... for as long as they exist."""
    values = []
    while f"{prefix}{len(values)}" in arrays:
        values.append(arrays[f"{prefix}{len(values)}"])
    return values
