"""The TensorFlow primitives of the neutral trainer (common/trainer.py), in eager, compiled or xla mode.

The whole schedule runs on these primitives; the modes differ only in how it is called: op by op (eager), inside
tf.function (compiled), or tf.function(jit_compile=True) (xla): every gradient, both optimiser updates and the
clipping of one step in one graph (under XLA one cluster, so the optimiser's elementwise update is fused). The
compiled functions take tensors of fixed shape and dtype (input_signature), so they trace once: one graph for a
single step (train_step) and one for K steps in a tf.range loop (train_steps). The two graphs are optimised
separately (grappler, XLA) and may round differently in the last bits: common/tolerances.py K_STEPS_ATOL.
Each is called through its one concrete function (traced on the first call, as before), not through tf.function:
the same graph, without tf.function's per-call dispatch (binding the arguments to the input signature, casting
them to its specs, the trace-cache lookup), which on a step as small as parabola's cost about a third of it.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from backend_tf import losses, models, optim
from common import trainer
from common.spec import GAN


class Trainer(trainer.Trainer):
    models = models  # build, load and export weights in the neutral layout

    def __init__(self, spec: GAN, weights: dict, device: str, mode: str):
        super().__init__(spec, mode)
        self.device = device
        self.dtype = tf.as_dtype(spec.dtype)  # of every tensor the trainer is handed
        with tf.device(device):
            self.generator = models.build_generator(spec)
            self.discriminator = models.build_discriminator(spec)
            self.set_weights(weights)
            self.g_vars = self.generator.trainable_variables
            self.d_vars = self.discriminator.trainable_variables
            self.g_opt = optim.make_optimizer(spec.g_optimizer, self.g_vars)
            self.d_opt = optim.make_optimizer(spec.d_optimizer, self.d_vars)
        self._step_fn, self._steps_fn = self._make_step_functions()
        self._concrete = {}  # the step's and the K steps' concrete functions, each got on its first call
        self.compiled_as = {"eager": "eager: op by op", "compiled": "whole step as one tf.function graph",
                            "xla": "whole step as one XLA cluster (tf.function, jit_compile=True)"}[mode]
        self._phase_fn, self._phase_clock = None, None  # time_phases' traced step, built on first use

    # ---- primitives of the step ---------------------------------------------------------------------
    def pack(self, x):
        """Rows of examples -> D's rows of packs (common/spec.py GAN.pack); with pack 1 the tensor itself."""
        return x if self.spec.pack == 1 else tf.reshape(x, (-1, self.spec.d_input_dim))

    def d_gradients(self, real, fake, eps, masks=None):
        loss_spec = self.spec.loss
        real, fake = self.pack(real), self.pack(tf.stop_gradient(fake))
        m_real, m_fake, m_gp = masks if masks is not None else (None, None, None)
        with tf.GradientTape() as tape:
            l_r = self.discriminator(real, training=True, masks=m_real)[:, 0]
            l_f = self.discriminator(fake, training=True, masks=m_fake)[:, 0]
            penalty = None
            if self.uses_gp:
                penalty = losses.gradient_penalty(lambda x: self.discriminator(x, training=True, masks=m_gp),
                                                  real, fake, eps)
            loss = losses.d_loss(loss_spec, l_r, l_f, penalty)
        grads = tape.gradient(loss, self.d_vars)
        d_real = tf.reduce_mean(losses.d_output(loss_spec, l_r))
        d_fake = tf.reduce_mean(losses.d_output(loss_spec, l_f))
        return loss, d_real, d_fake, grads

    def g_gradients(self, noise, mask=None, g_stats=True, d_stats=True):
        with tf.GradientTape() as tape:
            fake = self.generator(noise, training=True, update_stats=g_stats)
            logits = self.discriminator(self.pack(fake), training=True, masks=mask, update_stats=d_stats)
            loss = losses.g_loss(self.spec.loss, logits[:, 0])
        return loss, tape.gradient(loss, self.g_vars), fake

    def fake(self, noise):
        return self.generator(noise, training=True)

    def sample(self, noise):
        return self.generator(noise)  # evaluation mode

    def apply_d(self, grads):
        self.d_opt.apply(grads)

    def apply_g(self, grads):
        self.g_opt.apply(grads)

    def clip_d(self, clip: float):
        for variable in self.d_vars:
            variable.assign(tf.clip_by_value(variable, -clip, clip))

    def stack(self, values):
        return tf.stack(values)

    def discriminator_output(self, x):
        return losses.d_output(self.spec.loss, self.discriminator(self.pack(x))[:, 0])  # evaluation mode

    # ---- tensors, device, how the mode runs the schedule -----------------------------------------------
    def to_tensor(self, array):
        with tf.device(self.device):
            return tf.convert_to_tensor(np.asarray(array, dtype=self.dtype.as_numpy_dtype))

    def to_numpy(self, tensor) -> np.ndarray:
        return tensor.numpy()

    def sync(self):
        tf.test.experimental.sync_devices()  # eager ops may still run on a GPU stream

    def _steps(self, real, noise, gp_eps, dropout=None):
        """K steps in one traced loop; returns (K, 4)."""
        count = tf.shape(real)[0]
        results = tf.TensorArray(self.dtype, size=count)
        for i in tf.range(count):
            results = results.write(i, self.schedule(real[i], noise[i], gp_eps[i] if self.uses_gp else None,
                                                     None if dropout is None else dropout[i]))
        return results.stack()

    def _make_step_functions(self):
        """The one-step and K-step functions of compiled modes ((None, None) in eager), each taking
        (real, noise[, gp_eps]) tensors; K is the K-step function's one dynamic dimension."""
        if self.mode == "eager":
            return None, None
        spec = self.spec
        d, batch, rows = spec.updates.d_steps, spec.batch_size, spec.examples_per_batch  # rows: batch packs of examples
        one = [tf.TensorSpec((d, rows, spec.data_dim), self.dtype),
               tf.TensorSpec((d + 1, rows, spec.latent_dim), self.dtype)]
        if self.uses_gp:
            one.append(tf.TensorSpec((d, batch), self.dtype))
        if self.dropout_units:
            one.append(tf.TensorSpec((spec.dropout_passes, batch, self.dropout_units), self.dtype))
        many = [tf.TensorSpec((None,) + tuple(s.shape), s.dtype) for s in one]

        def unpack(real, noise, rest):
            rest = list(rest)
            gp_eps = rest.pop(0) if self.uses_gp else None
            return real, noise, gp_eps, rest.pop(0) if self.dropout_units else None

        def step(real, noise, *rest):
            return self.schedule(*unpack(real, noise, rest))

        def steps(real, noise, *rest):
            return self._steps(*unpack(real, noise, rest))
        xla = self.mode == "xla"
        return (tf.function(step, input_signature=one, jit_compile=xla),
                tf.function(steps, input_signature=many, jit_compile=xla))

    def run_steps(self, tensors) -> np.ndarray:
        with tf.device(self.device):
            if self._steps_fn is None:  # eager: a Python loop; results stay tensors until the end
                real, noise, gp_eps, dropout = tensors
                return tf.stack([self.schedule(real[i], noise[i], None if gp_eps is None else gp_eps[i],
                                               None if dropout is None else dropout[i])
                                 for i in range(real.shape[0])]).numpy()
            return self._call(self._steps_fn, tensors).numpy()

    def run_step(self, tensors) -> np.ndarray:
        with tf.device(self.device):
            if self._step_fn is None:
                return self.schedule(*tensors).numpy()
            return self._call(self._step_fn, tensors).numpy()

    def _call(self, function, tensors):
        """``function`` (the step's or the K steps' tf.function) on the given tensors, through its concrete function:
        its input signature gives it exactly one, traced on the first call (where tf.function would trace it). A
        concrete function falls back to its flat signature, which does not check shapes: common/trainer.py
        _tensors has checked every shape against the spec, and to_tensor gave every tensor the trainer's dtype."""
        concrete = self._concrete.get(function)
        if concrete is None:
            concrete = self._concrete[function] = function.get_concrete_function()
        return concrete(*(t for t in tensors if t is not None))

    def time_phases(self, real, noise, gp_eps=None, dropout=None) -> dict[str, float]:
        """One train_step (same resulting state) with its D update(s) and its G update timed apart.

        Eager: the neutral trainer's clock around the schedule's own phases. Compiled modes: the step is traced
        once more with a host callback (tf.py_function) at each boundary, given every network variable so that
        TensorFlow orders it after the writes of the phase before and before the reads of the phase after. That
        graph differs from train_step's (grappler may round a last bit differently), so its update is undone and
        the step is then run through train_step's own function: the state is exactly train_step's. A host
        callback cannot sit inside an XLA cluster, so in xla mode the phases are timed in that graph without
        XLA: the split is indicative there.
        """
        if self.mode == "eager":
            with tf.device(self.device):
                return super().time_phases(real, noise, gp_eps, dropout)
        state = self._state_variables()
        with tf.device(self.device):
            saved = [tf.identity(variable) for variable in state]
            tensors = self._tensors(real, noise, gp_eps, stacked=False, dropout=dropout)
            if self._phase_fn is None:
                self._phase_fn = tf.function(self._marked_step)
            self._phase_clock = clock = trainer.PhaseClock()  # a callback runs in order: nothing to sync
            self._phase_fn(*tensors).numpy()
            for variable, value in zip(state, saved):
                variable.assign(value)
        self.train_step(real, noise, gp_eps, dropout)
        return clock.seconds

    def _marked_step(self, real, noise, gp_eps, dropout):
        network_variables = self.g_vars + self.d_vars

        def mark(phase):
            tf.py_function(lambda *_: self._phase_clock.mark(phase), network_variables, [])
        return self.schedule(real, noise, gp_eps, dropout, mark=mark)

    def _state_variables(self) -> list:
        """Every variable a step changes: weights, BatchNorm statistics, optimiser moments and step counters."""
        state = list(self.g_vars) + list(self.d_vars)
        state += models.statistics(self.generator) + models.statistics(self.discriminator)
        for opt in (self.g_opt, self.d_opt):
            state += [opt.t] + [v for moments in opt.moments().values() for v in moments]
        return state

    def generate(self, noise) -> np.ndarray:
        with tf.device(self.device):
            return super().generate(noise)

    def discriminate(self, x) -> np.ndarray:
        with tf.device(self.device):
            return super().discriminate(x)

    # ---- weights and optimiser state, neutral layout ------------------------------------------------
    def _optimizer(self, network: str):
        return self.g_opt if network == "generator" else self.d_opt

    def optimizer_state(self, network: str) -> tuple[int, dict[str, list[np.ndarray]]]:
        opt, layouts = self._optimizer(network), getattr(self, network).layouts
        return int(opt.t.numpy()), {key: models.to_neutral(variables, layouts)
                                    for key, variables in opt.moments().items()}

    def load_optimizer_state(self, network: str, t: int, moments: dict[str, list[np.ndarray]]) -> None:
        layouts = getattr(self, network).layouts
        self._optimizer(network).set_state(t, {key: models.from_neutral(arrays, layouts)
                                               for key, arrays in moments.items()})
