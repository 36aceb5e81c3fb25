"""The TensorFlow Trainer: one GAN step per the spec's update semantics, in eager, compiled or xla mode.

The step itself is one Python function over tensors (``_step``); the modes only differ in how it is
called: op by op (eager), inside tf.function (compiled), or tf.function(jit_compile=True) (xla). The
compiled functions take tensors of fixed shape and dtype (input_signature), so they trace once.
"""
from __future__ import annotations

import json
import os
import tempfile
import time

import numpy as np
import tensorflow as tf

from backend_tf import losses, models, optim
from common.spec import GAN

NETWORKS = ("generator", "discriminator")
# Fields that fix the shapes of the weights and of the optimiser state: a checkpoint must match them.
CHECKPOINT_FIELDS = ("latent_dim", "data_shape", "generator", "discriminator")


def _no_mark(phase: str) -> None:
    pass


class Trainer:
    def __init__(self, spec: GAN, weights: dict, device: str, mode: str):
        self.spec = spec
        self.device = device
        self.mode = mode
        self.uses_gp = spec.loss.name == "wgan-gp"
        with tf.device(device):
            self.generator = models.build_generator(spec)
            self.discriminator = models.build_discriminator(spec)
            self.set_weights(weights)
            self.g_vars = self.generator.trainable_variables
            self.d_vars = self.discriminator.trainable_variables
            self.g_opt = optim.make_optimizer(spec.g_optimizer, self.g_vars)
            self.d_opt = optim.make_optimizer(spec.d_optimizer, self.d_vars)
        self._step_fn, self._steps_fn = self._make_functions()
        self._phase_fn, self._phase_clock = None, None  # time_phases' traced step, built on first use

    # ---- the step, on tensors --------------------------------------------------------------------
    def _d_gradients(self, real, fake, eps):
        """L_D, reported D outputs and D's gradient at the current weights (fake carries no gradient)."""
        loss_spec = self.spec.loss
        fake = tf.stop_gradient(fake)
        with tf.GradientTape() as tape:
            l_r = self.discriminator(real)[:, 0]
            l_f = self.discriminator(fake)[:, 0]
            penalty = losses.gradient_penalty(self.discriminator, real, fake, eps) if self.uses_gp else None
            loss = losses.d_loss(loss_spec, l_r, l_f, penalty)
        grads = tape.gradient(loss, self.d_vars)
        d_real = tf.reduce_mean(losses.d_output(loss_spec, l_r))
        d_fake = tf.reduce_mean(losses.d_output(loss_spec, l_f))
        return loss, d_real, d_fake, grads

    def _g_gradients(self, noise):
        """L_G, G's gradient at the current weights, and the fake batch G made (before any update)."""
        with tf.GradientTape() as tape:
            fake = self.generator(noise)
            loss = losses.g_loss(self.spec.loss, self.discriminator(fake)[:, 0])
        return loss, tape.gradient(loss, self.g_vars), fake

    def _apply_d(self, grads):
        self.d_opt.apply(grads)
        if self.spec.loss.name == "wasserstein":
            clip = self.spec.loss.clip
            for variable in self.d_vars:
                variable.assign(tf.clip_by_value(variable, -clip, clip))

    def _d_update(self, real, fake, eps):
        loss, d_real, d_fake, grads = self._d_gradients(real, fake, eps)
        self._apply_d(grads)
        return loss, d_real, d_fake

    def _step(self, real, noise, gp_eps, mark=_no_mark):
        """One step; returns [d_loss, g_loss, d_real, d_fake] as a (4,) float32 tensor.

        ``mark(phase)`` is called as each stretch of the step ends ("d_update" or "g_update"); only
        time_phases passes one, the math is the same either way.
        """
        updates = self.spec.updates
        d = updates.d_steps

        def eps(k):
            return gp_eps[k] if self.uses_gp else None

        if updates.order == "simultaneous":
            if updates.reuse_fake:  # D trains on the very batch G is trained through
                g_loss, g_grads, fake = self._g_gradients(noise[0])
            else:
                g_loss, g_grads, _ = self._g_gradients(noise[1])
            mark("g_update")
            if not updates.reuse_fake:
                fake = self.generator(noise[0])
            d_loss, d_real, d_fake, d_grads = self._d_gradients(real[0], fake, eps(0))
            self._apply_d(d_grads)
            mark("d_update")
            self.g_opt.apply(g_grads)
            mark("g_update")
        elif updates.order == "d_then_g":
            for k in range(d):
                d_loss, d_real, d_fake = self._d_update(real[k], self.generator(noise[k]), eps(k))
            mark("d_update")
            g_loss, g_grads, _ = self._g_gradients(noise[d - 1] if updates.reuse_fake else noise[d])
            self.g_opt.apply(g_grads)
            mark("g_update")
        else:  # g_then_d
            g_loss, g_grads, fake_before = self._g_gradients(noise[0] if updates.reuse_fake else noise[d])
            self.g_opt.apply(g_grads)
            mark("g_update")
            for k in range(d):
                fake = fake_before if (updates.reuse_fake and k == 0) else self.generator(noise[k])
                d_loss, d_real, d_fake = self._d_update(real[k], fake, eps(k))
            mark("d_update")
        return tf.stack([d_loss, g_loss, d_real, d_fake])

    def _steps(self, real, noise, gp_eps):
        """K steps in one traced loop; returns (K, 4)."""
        count = tf.shape(real)[0]
        results = tf.TensorArray(tf.float32, size=count)
        for i in tf.range(count):
            results = results.write(i, self._step(real[i], noise[i], gp_eps[i] if self.uses_gp else None))
        return results.stack()

    def _make_functions(self):
        """(step, steps) callables taking (real, noise[, gp_eps]) tensors; step is None in compiled modes."""
        spec = self.spec
        d, batch = spec.updates.d_steps, spec.batch_size
        signature = [tf.TensorSpec((d, batch, spec.data_dim), tf.float32),
                     tf.TensorSpec((d + 1, batch, spec.latent_dim), tf.float32)]
        if self.uses_gp:
            signature.append(tf.TensorSpec((d, batch), tf.float32))

        def step(*args):
            return self._step(*args) if self.uses_gp else self._step(*args, None)

        def steps(*args):
            return self._steps(*args) if self.uses_gp else self._steps(*args, None)

        if self.mode == "eager":
            def eager_steps(*args):  # a Python loop; results stay tensors until the end
                return tf.stack([step(*(a[i] for a in args)) for i in range(args[0].shape[0])])
            return step, eager_steps
        # Compiled modes trace only the K-step function (K is the one dynamic dimension): train_step runs
        # it with K = 1. Two separately traced graphs were measured to differ in the last bit (grappler
        # rewrites them differently); one graph makes K steps equal K single steps bit for bit.
        stacked = [tf.TensorSpec((None,) + tuple(s.shape), s.dtype) for s in signature]
        return None, tf.function(steps, input_signature=stacked, jit_compile=self.mode == "xla")

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
        return [tf.convert_to_tensor(np.asarray(arrays[name], dtype=np.float32)) for name in arrays]

    def train_step(self, real, noise, gp_eps=None) -> dict[str, float]:
        if self._step_fn is None:
            one = self.train_steps(np.asarray(real)[None], np.asarray(noise)[None],
                                   None if gp_eps is None else np.asarray(gp_eps)[None])
            return {key: float(values[0]) for key, values in one.items()}
        with tf.device(self.device):
            result = self._step_fn(*self._inputs(real, noise, gp_eps, stacked=False)).numpy()
        return {"d_loss": float(result[0]), "g_loss": float(result[1]),
                "d_real": float(result[2]), "d_fake": float(result[3])}

    def time_phases(self, real, noise, gp_eps=None) -> dict[str, float]:
        """One train_step (same resulting state) with its D update(s) and its G update timed apart:
        {"d_update": seconds, "g_update": seconds}.

        Eager: the Python clock around the step's own phases, devices synchronised at each boundary.
        Compiled modes: the step is traced once more with a host callback (tf.py_function) at each boundary,
        given every network variable so that TensorFlow orders it after the writes of the phase before and
        before the reads of the phase after. That graph differs from train_step's (grappler may round a last
        bit differently), so its update is undone and the step is then run through train_step's own function:
        the state is exactly train_step's. A host callback cannot sit inside an XLA cluster, so in xla mode
        the phases are timed in that graph without XLA: the split is indicative there.
        """
        if self.mode == "eager":
            inputs = self._inputs(real, noise, gp_eps, stacked=False) + ([] if self.uses_gp else [None])
            clock = _PhaseClock(synchronize=True)
            with tf.device(self.device):
                self._step(*inputs, mark=clock.mark)
            return clock.seconds
        state = self._state_variables()
        with tf.device(self.device):
            saved = [tf.identity(variable) for variable in state]
            inputs = self._inputs(real, noise, gp_eps, stacked=False) + ([] if self.uses_gp else [None])
            if self._phase_fn is None:
                self._phase_fn = tf.function(self._marked_step)
            self._phase_clock = clock = _PhaseClock(synchronize=False)
            self._phase_fn(*inputs).numpy()
            for variable, value in zip(state, saved):
                variable.assign(value)
        self.train_step(real, noise, gp_eps)
        return clock.seconds

    def _marked_step(self, real, noise, gp_eps):
        network_variables = self.g_vars + self.d_vars

        def mark(phase):
            tf.py_function(lambda *_: self._phase_clock.mark(phase), network_variables, [])
        return self._step(real, noise, gp_eps, mark=mark)

    def _state_variables(self) -> list:
        """Every variable a step changes: weights, optimiser moments and step counters."""
        state = list(self.g_vars) + list(self.d_vars)
        for opt in (self.g_opt, self.d_opt):
            state += [opt.t] + [v for moments in opt.moments().values() for v in moments]
        return state

    def train_steps(self, real, noise, gp_eps=None) -> dict[str, np.ndarray]:
        with tf.device(self.device):
            result = self._steps_fn(*self._inputs(real, noise, gp_eps, stacked=True)).numpy()
        return {"d_loss": result[:, 0], "g_loss": result[:, 1], "d_real": result[:, 2], "d_fake": result[:, 3]}

    def generate(self, noise) -> np.ndarray:
        with tf.device(self.device):
            return self.generator(tf.convert_to_tensor(np.asarray(noise, dtype=np.float32))).numpy()

    def discriminate(self, x) -> np.ndarray:
        with tf.device(self.device):
            logits = self.discriminator(tf.convert_to_tensor(np.asarray(x, dtype=np.float32)))[:, 0]
            return losses.d_output(self.spec.loss, logits).numpy()

    def get_weights(self) -> dict[str, list[np.ndarray]]:
        return {"generator": models.export_weights(self.generator),
                "discriminator": models.export_weights(self.discriminator)}

    def set_weights(self, weights: dict[str, list[np.ndarray]]) -> None:
        models.load_weights(self.generator, weights["generator"])
        models.load_weights(self.discriminator, weights["discriminator"])

    # ---- checkpoints ------------------------------------------------------------------------------
    def save(self, path) -> None:
        """Networks and both optimisers' state to one .npz (neutral keys), written atomically."""
        arrays = {"spec": np.array(json.dumps(self.spec.to_dict(), sort_keys=True))}
        for network, opt in (("generator", self.g_opt), ("discriminator", self.d_opt)):
            for i, value in enumerate(models.export_weights(getattr(self, network))):
                arrays[f"{network}/{i}"] = value
            arrays[f"opt/{network}/t"] = np.array(int(opt.t.numpy()), dtype=np.int64)
            for key, variables in opt.moments().items():
                for i, variable in enumerate(variables):
                    arrays[f"opt/{network}/{key}/{i}"] = np.array(variable.numpy(), dtype=np.float32)
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
            moments = {key: _numbered(arrays, f"opt/{network}/{key}/") for key in opt.moments()}
            opt.set_state(int(arrays[f"opt/{network}/t"]), moments)


class _PhaseClock:
    """Charges the time since the previous mark to the phase that just ended."""

    def __init__(self, synchronize: bool):
        self.synchronize = synchronize  # eager ops may still run on a GPU stream; a callback runs in order
        self.seconds = {"d_update": 0.0, "g_update": 0.0}
        self._sync()
        self.last = time.perf_counter()

    def _sync(self):
        if self.synchronize:
            tf.test.experimental.sync_devices()

    def mark(self, phase: str) -> None:
        self._sync()
        now = time.perf_counter()
        self.seconds[phase] += now - self.last
        self.last = now


def _numbered(arrays: dict, prefix: str) -> list[np.ndarray]:
    """arrays[prefix + "0"], arrays[prefix + "1"], ... for as long as they exist."""
    values = []
    while f"{prefix}{len(values)}" in arrays:
        values.append(arrays[f"{prefix}{len(values)}"])
    return values
