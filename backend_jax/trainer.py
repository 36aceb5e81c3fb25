"""The JAX primitives of the neutral trainer (common/trainer.py), in eager or compiled mode.

JAX differentiates and compiles pure functions, while the neutral schedule calls primitives that move state
(weights, BatchNorm statistics, optimiser moments). The two meet here: the trainer's state is plain arrays held by
the two ``models.Model`` (``params``, ``stats``) and the two optimisers (``state``); each primitive reads them and
writes new arrays back (``d_gradients`` runs jax.value_and_grad of a pure loss of D's parameters, whose training
passes return the statistics they leave). A compiled step is a pure function of (state, step inputs): it puts the
traced state into the models and optimisers, runs the schedule, takes the new state out and puts the old one back,
so jax.jit traces the schedule as torch.compile and tf.function do.

The modes:
* eager: JAX's own eager: no jax.jit anywhere; every jax.numpy operation is dispatched on its own (each a small
  XLA computation, compiled once per shape and cached) and jax.grad is evaluated op by op. Like PyTorch eager it
  pays Python and dispatch time per op; unlike it, nothing is fused.
* compiled: the whole step (every gradient, WGAN-GP's second order included, both optimisers' updates, clipping,
  the fake batches) as one jax.jit computation, the state's buffers donated to it (updated in place where XLA can).
  K steps (train_steps) are one jax.jit computation too: lax.scan of that step over the K inputs. The two are
  compiled separately and may round differently in the last bits (common/tolerances.py K_STEPS_ATOL).
The compiled functions depend only on the spec, so every trainer of one spec, mode and device in a process shares
them: the second trainer does not compile again (as torch.compile's graph is shared).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import io_callback

from backend_jax import losses, models, optim
from common import trainer
from common.spec import GAN

COMPILED_AS = {"eager": "eager: op by op (no jax.jit: each jax.numpy op dispatched on its own, jax.grad op by op)",
               "compiled": "whole step as one XLA computation (jax.jit, state buffers donated); K steps as lax.scan"}
# (spec, device, mode) -> the trainer whose jitted functions every later trainer of that key calls
_COMPILED: dict = {}


class Trainer(trainer.Trainer):
    models = models  # build, load and export weights in the neutral layout

    def __init__(self, spec: GAN, weights: dict, device, mode: str):
        super().__init__(spec, mode)
        self.device = device
        self.dtype = np.dtype(spec.dtype)  # of every array the trainer is handed
        self.generator = models.build_generator(spec)
        self.discriminator = models.build_discriminator(spec)
        for model in (self.generator, self.discriminator):
            model.params = [jax.device_put(p, device) for p in model.params]
            model.stats = [jax.device_put(s, device) for s in model.stats]
        self.set_weights(weights)
        self.g_opt = self._bind(spec.g_optimizer, self.generator)
        self.d_opt = self._bind(spec.d_optimizer, self.discriminator)
        # every array committed to the device, as a compiled step's outputs are: else the second call, whose inputs
        # are the first one's outputs, lowers and compiles the step again
        self._set_state(jax.device_put(self._get_state(), device))
        self.compiled_as = COMPILED_AS[mode]
        if mode == "compiled":
            owner = _COMPILED.setdefault((spec, device, mode), self)
            if owner is self:
                self._step_fn = jax.jit(self._pure_step, donate_argnums=0)
                self._steps_fn = jax.jit(self._pure_steps, donate_argnums=0)
                self._phase_fn = jax.jit(self._marked_step)  # time_phases: not donated, its result is discarded
            else:
                self._step_fn, self._steps_fn, self._phase_fn = owner._step_fn, owner._steps_fn, owner._phase_fn

    @staticmethod
    def _bind(opt, model) -> optim.Bound:
        return optim.Bound(optim.transform(opt), lambda: model.params, lambda params: setattr(model, "params", params))

    # ---- primitives of the step ---------------------------------------------------------------------
    def pack(self, x):
        """Rows of examples -> D's rows of packs (common/spec.py GAN.pack); with pack 1 the array itself."""
        return x if self.spec.pack == 1 else jnp.reshape(x, (-1, self.spec.d_input_dim))

    def d_gradients(self, real, fake, eps, masks=None):
        loss_spec, disc = self.spec.loss, self.discriminator
        real, fake = self.pack(real), self.pack(jax.lax.stop_gradient(fake))
        m_real, m_fake, m_gp = masks if masks is not None else (None, None, None)

        def loss_fn(params):
            # D's training passes in order (real, fake, interpolates), each leaving the statistics the next starts from
            l_r, stats = disc.apply(params, disc.stats, real, True, m_real)
            l_f, stats = disc.apply(params, stats, fake, True, m_fake)
            penalty = None
            if self.uses_gp:
                penalty, stats = losses.gradient_penalty(lambda x, s=stats: disc.apply(params, s, x, True, m_gp),
                                                         real, fake, eps, has_aux=True)
            return losses.d_loss(loss_spec, l_r[:, 0], l_f[:, 0], penalty), (l_r[:, 0], l_f[:, 0], stats)

        (loss, (l_r, l_f, stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(disc.params)
        disc.stats = stats
        d_real = jnp.mean(losses.d_output(loss_spec, l_r))
        d_fake = jnp.mean(losses.d_output(loss_spec, l_f))
        return loss, d_real, d_fake, grads

    def g_gradients(self, noise, mask=None, g_stats=True, d_stats=True):
        gen, disc = self.generator, self.discriminator

        def loss_fn(params):
            fake, g_new = gen.apply(params, gen.stats, noise, True, None, g_stats)
            logits, d_new = disc.apply(disc.params, disc.stats, self.pack(fake), True, mask, d_stats)
            return losses.g_loss(self.spec.loss, logits[:, 0]), (fake, g_new, d_new)

        (loss, (fake, g_new, d_new)), grads = jax.value_and_grad(loss_fn, has_aux=True)(gen.params)
        gen.stats, disc.stats = g_new, d_new
        return loss, grads, fake

    def fake(self, noise):
        return self.generator(noise, True)  # a training pass: moves G's statistics; nothing differentiates it

    def sample(self, noise):
        return self.generator(noise)  # evaluation mode

    def apply_d(self, grads):
        self.d_opt.apply(grads)

    def apply_g(self, grads):
        self.g_opt.apply(grads)

    def clip_d(self, clip: float):
        self.discriminator.params = [jnp.clip(p, -clip, clip) for p in self.discriminator.params]

    def stack(self, values):
        return jnp.stack(values)

    def discriminator_output(self, x):
        return losses.d_output(self.spec.loss, self.discriminator(self.pack(x))[:, 0])  # evaluation mode

    # ---- arrays, device, how the mode runs the schedule -------------------------------------------------
    def to_tensor(self, array):
        array = np.asarray(array, dtype=self.dtype)
        if self.mode == "compiled":
            # numpy as it is: the jitted step's dispatch copies its numpy arguments to the device in C++ (next to the
            # committed state: its device). A jax.device_put first cost ~25 us of Python per array and an
            # asynchronous copy the step then waited for: 330 against 160 us a parabola step (benchmarks/perf.py a)
            return array
        return jax.device_put(array, self.device)

    def to_numpy(self, tensor) -> np.ndarray:
        return np.asarray(tensor)

    def sync(self):
        jax.block_until_ready(self._get_state())  # JAX dispatches asynchronously

    def _get_state(self) -> dict:
        """Every array a step changes: weights, BatchNorm statistics, optimiser state, per network."""
        return {"generator": (self.generator.params, self.generator.stats, self.g_opt.state),
                "discriminator": (self.discriminator.params, self.discriminator.stats, self.d_opt.state)}

    def _set_state(self, state: dict) -> None:
        for network, opt in (("generator", self.g_opt), ("discriminator", self.d_opt)):
            model = getattr(self, network)
            params, stats, opt.state = state[network]
            model.params, model.stats = list(params), list(stats)

    def _pure_step(self, state, real, noise, gp_eps, dropout, mark=trainer.no_mark):
        """(state after one step, its four results): the schedule as a pure function of the state."""
        saved = self._get_state()
        self._set_state(state)
        try:
            result = self.schedule(real, noise, gp_eps, dropout, mark=mark)
            return self._get_state(), result
        finally:
            self._set_state(saved)

    def _pure_steps(self, state, real, noise, gp_eps, dropout):
        """K steps: lax.scan of the one-step function over the inputs' leading axis; results (K, 4)."""
        return jax.lax.scan(lambda carry, inputs: self._pure_step(carry, *inputs), state, (real, noise, gp_eps, dropout))

    def run_step(self, tensors) -> np.ndarray:
        if self.mode == "eager":
            return np.asarray(self.schedule(*tensors))
        state, result = self._step_fn(self._get_state(), *tensors)
        self._set_state(state)
        return np.asarray(result)

    def run_steps(self, tensors) -> np.ndarray:
        real, noise, gp_eps, dropout = tensors
        if self.mode == "eager":  # a Python loop; results stay on the device until the one conversion at the end
            results = [self.schedule(real[i], noise[i], None if gp_eps is None else gp_eps[i],
                                     None if dropout is None else dropout[i]) for i in range(real.shape[0])]
            return np.asarray(jnp.stack(results)) if results else np.zeros((0, 4), self.dtype)
        state, results = self._steps_fn(self._get_state(), *tensors)
        self._set_state(state)
        return np.asarray(results)

    def time_phases(self, real, noise, gp_eps=None, dropout=None) -> dict[str, float]:
        """One train_step (same resulting state) with its D update(s) and its G update timed apart.

        Eager: the neutral trainer's clock around the schedule's own phases. Compiled: the step is compiled once more
        with a host callback (jax.experimental.io_callback, ordered) at each boundary, handed a sum over the whole
        state so that it runs after the phase before has written it, its token tied to that state by
        lax.optimization_barrier so that the phase after waits for it. That computation is another XLA program than
        train_step's (it may round a last bit differently): its result is discarded (a pure function: nothing to
        undo) and the step is then run through train_step's own function, so the state is exactly train_step's. The
        split is indicative: the barriers keep XLA from overlapping and fusing across the boundaries, so the marked
        program runs slower than the step (measured, mnist batch 128 on 2 loaded cores: D 20.6 + G 21.7 ms against
        a 23.0 ms step, 2026-12-05)."""
        if self.mode == "eager":
            return super().time_phases(real, noise, gp_eps, dropout)
        tensors = self._tensors(real, noise, gp_eps, stacked=False, dropout=dropout)
        clock = trainer.PhaseClock()  # the callbacks run in order: nothing to sync
        _PHASE_CLOCKS.append(clock)
        try:
            jax.block_until_ready(self._phase_fn(self._get_state(), *tensors))
        finally:
            _PHASE_CLOCKS.remove(clock)
        self.train_step(real, noise, gp_eps, dropout)
        return clock.seconds

    def _marked_step(self, state, real, noise, gp_eps, dropout):
        def mark(phase: str) -> None:
            current = self._get_state()
            # the callback's operand: a sum over every array of the state, which needs each whole (a slice could be
            # computed early), without copying the state to the host (~1 ms on mnist's 2 M parameters)
            probe = sum(jnp.sum(leaf).astype(jnp.float32) for leaf in jax.tree.leaves(current))
            token = io_callback(lambda *_: _mark_current(phase), jax.ShapeDtypeStruct((), np.int32), probe,
                                ordered=True)
            _, current = jax.lax.optimization_barrier((token, current))
            self._set_state(current)
        return self._pure_step(state, real, noise, gp_eps, dropout, mark=mark)

    # ---- weights and optimiser state, neutral layout ------------------------------------------------
    def _optimizer(self, network: str) -> optim.Bound:
        return self.g_opt if network == "generator" else self.d_opt

    def optimizer_state(self, network: str) -> tuple[int, dict[str, list[np.ndarray]]]:
        opt, layouts = self._optimizer(network), getattr(self, network).layouts
        return opt.t, {key: models.to_neutral(arrays, layouts) for key, arrays in opt.moments().items()}

    def load_optimizer_state(self, network: str, t: int, moments: dict[str, list[np.ndarray]]) -> None:
        model, opt = getattr(self, network), self._optimizer(network)
        opt.set_state(t, {key: models.from_neutral(arrays, model.params, model.layouts, self.device)
                          for key, arrays in moments.items()})
        # the step count too committed to the device (as in __init__): else the compiled step, handed an uncommitted
        # count after load_state and a committed one by its own output, compiles twice (1.5 s on the parity GAN)
        opt.state = jax.device_put(opt.state, self.device)


# The clocks of the time_phases calls running now (the compiled mark callback is shared by every trainer of a spec).
_PHASE_CLOCKS: list = []


def _mark_current(phase: str) -> np.ndarray:
    if _PHASE_CLOCKS:
        _PHASE_CLOCKS[-1].mark(phase)
    return np.zeros((), np.int32)

