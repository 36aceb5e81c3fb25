"""The PyTorch primitives of the neutral trainer (common/trainer.py), in eager or compiled mode.

Each update is split in two: a function that computes the loss, the reported D outputs and the gradients at the
current weights (``d_gradients`` / ``g_gradients``), and the optimiser's in-place update. The modes differ only
in how the schedule runs:
* eager: op by op; the spec optimisers equal torch.optim's exactly.
* compiled: the whole step -- every gradient computation (forward, loss and ``torch.autograd.grad``, traced with
  dynamo's trace_autograd_ops), both optimisers' updates, clipping and the fake batches -- as ONE torch.compile'd
  graph (fullgraph), with the optimisers' step counts kept as tensors (``capturable``) so no step recompiles. On
  CUDA it is compiled with mode="reduce-overhead": the step is captured and replayed as a CUDA graph. Every loss
  compiles whole, WGAN-GP's double backward included (measured: one graph, no break). With torch.optim's own
  optimisers ("native*") the step is compiled the same way, but torch.optim breaks the graph before and after
  every ``step()`` on purpose (torch/optim/optimizer.py ``_use_grad``, pytorch#104053), so the step runs as a few
  graphs, as it does for every user who compiles a loop with torch.optim. ``compiled_as`` says which, and every
  run record carries it.
"""
from __future__ import annotations

import numpy as np
import torch

from backend_torch import losses, models, optim
from common import trainer
from common.spec import GAN


class Trainer(trainer.Trainer):
    models = models  # build, load and export weights in the neutral layout

    def __init__(self, spec: GAN, weights: dict, device: torch.device, mode: str):
        super().__init__(spec, mode)
        self.device = device
        self.dtype = np.dtype(spec.dtype)  # of every tensor the trainer is handed (models.DTYPES)
        self.generator = models.build_generator(spec).to(device)
        self.discriminator = models.build_discriminator(spec).to(device)
        self.set_weights(weights)
        self.g_params = list(self.generator.parameters())
        self.d_params = list(self.discriminator.parameters())
        capturable = mode == "compiled"
        self.g_opt = optim.make_optimizer(spec.g_optimizer, self.g_params, capturable)
        self.d_opt = optim.make_optimizer(spec.d_optimizer, self.d_params, capturable)
        self._schedule = self.schedule
        self._phase_schedule, self._phase_clock = None, None  # time_phases' compiled variant, built on first use
        self.compiled_as = "eager: op by op"
        if mode == "compiled":
            native = spec.d_optimizer.kind == "native" or spec.g_optimizer.kind == "native"
            if native:
                # Dynamo guards torch.optim's step on the optimiser object, so each new trainer adds a cache entry
                # to the same code: a process that builds many (a grid of cells) pays a longer guard lookup each
                # call and, past the recompile limit (8), runs the step eager. Measured, parabola: 757 steps/s for
                # the first trainer, 235-490 for the next ten. Such a trainer starts from empty caches (the spec
                # optimisers' whole-step graph is reused across trainers instead: test_compiled_equals_eager).
                torch.compiler.reset()
            self._schedule = _compiled(self.schedule, device, fullgraph=not native)
            self.compiled_as = (f"whole step, split by torch.optim's graph breaks around step() ({_compile_options(device)})"
                                if native else f"whole step as one graph ({_compile_options(device)})")

    # ---- primitives of the step ---------------------------------------------------------------------
    def pack(self, x):
        """Rows of examples -> D's rows of packs (common/spec.py GAN.pack); with pack 1 the tensor itself."""
        return x if self.spec.pack == 1 else x.reshape(-1, self.spec.d_input_dim)

    def d_gradients(self, real, fake, eps, masks=None):
        loss_spec = self.spec.loss
        real, fake = self.pack(real), self.pack(fake.detach())
        m_real, m_fake, m_gp = masks if masks is not None else (None, None, None)
        l_r = self.discriminator(real, True, m_real)[:, 0]
        l_f = self.discriminator(fake, True, m_fake)[:, 0]
        penalty = None
        if self.uses_gp:
            penalty = losses.gradient_penalty(lambda x: self.discriminator(x, True, m_gp), real, fake, eps)
        loss = losses.d_loss(loss_spec, l_r, l_f, penalty)
        grads = torch.autograd.grad(loss, self.d_params)
        d_real = losses.d_output(loss_spec, l_r).mean()
        d_fake = losses.d_output(loss_spec, l_f).mean()
        return loss.detach(), d_real.detach(), d_fake.detach(), grads

    def g_gradients(self, noise, mask=None, g_stats=True, d_stats=True):
        fake = self.generator(noise, True, None, g_stats)
        loss = losses.g_loss(self.spec.loss, self.discriminator(self.pack(fake), True, mask, d_stats)[:, 0])
        grads = torch.autograd.grad(loss, self.g_params)
        return loss.detach(), grads, fake.detach()

    def fake(self, noise):
        with torch.no_grad():
            return self.generator(noise, True)

    def sample(self, noise):
        with torch.no_grad():
            return self.generator(noise)

    def apply_d(self, grads):
        self.d_opt.apply(grads)

    def apply_g(self, grads):
        self.g_opt.apply(grads)

    @torch.no_grad()
    def clip_d(self, clip: float):
        for param in self.d_params:
            param.clamp_(-clip, clip)

    def stack(self, values):
        return torch.stack(values)

    def discriminator_output(self, x):
        with torch.no_grad():
            return losses.d_output(self.spec.loss, self.discriminator(self.pack(x))[:, 0])  # evaluation mode

    # ---- tensors, device, how the mode runs the schedule -----------------------------------------------
    def to_tensor(self, array) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(array, dtype=self.dtype)).to(self.device)

    def to_numpy(self, tensor) -> np.ndarray:
        return tensor.cpu().numpy()

    def sync(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def run_step(self, tensors) -> np.ndarray:
        return self._schedule(*tensors).cpu().numpy()

    def run_steps(self, tensors) -> np.ndarray:
        real, noise, gp_eps, dropout = tensors
        # A Python loop over the same (compiled) step: results stay on the device until the one conversion at the end.
        results = [self._schedule(real[i], noise[i], None if gp_eps is None else gp_eps[i],
                                  None if dropout is None else dropout[i]) for i in range(real.shape[0])]
        return torch.stack(results).cpu().numpy() if results else np.zeros((0, 4), self.dtype)

    def time_phases(self, real, noise, gp_eps=None, dropout=None) -> dict[str, float]:
        """One train_step (same resulting state) with its D update(s) and its G update timed apart.

        Eager: the neutral trainer's clock around the schedule's own phases. Compiled: the schedule compiled once
        more with the clock's marks left out of the graph (torch._dynamo.disable: a graph break at each phase
        boundary), so each phase runs compiled as it does in the whole step. That graph is cut differently from
        train_step's (its fusions may round a last bit differently), so its update is undone in place and the
        step is then run through train_step's own graph: the state is exactly train_step's."""
        if self.mode == "eager":
            return super().time_phases(real, noise, gp_eps, dropout)
        tensors = self._tensors(real, noise, gp_eps, stacked=False, dropout=dropout)
        if self._phase_schedule is None:
            self._phase_schedule = _compiled(self._marked_schedule, self.device, fullgraph=False)
        saved = [(tensor, tensor.detach().clone()) for tensor in self._state_tensors()]
        stateless = [opt for opt in (self.g_opt, self.d_opt) if isinstance(opt, optim.NativeOptimizer) and not opt.torch.state]
        self._phase_clock = clock = trainer.PhaseClock(self.sync)
        self._phase_schedule(*tensors)
        with torch.no_grad():
            for tensor, value in saved:
                tensor.copy_(value)
        for opt in stateless:  # torch.optim makes its state on the first step: as if none had been taken
            opt.torch.state.clear()
        self.train_step(real, noise, gp_eps, dropout)
        return clock.seconds

    def _marked_schedule(self, real, noise, gp_eps, dropout):
        return self.schedule(real, noise, gp_eps, dropout, mark=self._mark_phase)

    @torch._dynamo.disable
    def _mark_phase(self, phase: str) -> None:
        self._phase_clock.mark(phase)

    def _state_tensors(self) -> list[torch.Tensor]:
        """Every tensor a step changes: weights, BatchNorm statistics, optimiser moments and step counts."""
        tensors = self.g_params + self.d_params + [b for net in (self.generator, self.discriminator) for b in net.buffers()]
        for opt in (self.g_opt, self.d_opt):
            if isinstance(opt, optim.NativeOptimizer):
                tensors += [value for state in opt.torch.state.values() for value in state.values()
                            if isinstance(value, torch.Tensor)]
            else:
                tensors += [t for moments in opt.moments().values() for t in moments]
                tensors += [opt.steps.tensor] if opt.steps.tensor is not None else []
        return tensors

    # ---- weights and optimiser state, neutral layout ------------------------------------------------
    def _optimizer(self, network: str):
        return (self.g_opt, self.g_params) if network == "generator" else (self.d_opt, self.d_params)

    def optimizer_state(self, network: str) -> tuple[int, dict[str, list[np.ndarray]]]:
        opt, _ = self._optimizer(network)
        layouts = getattr(self, network).layouts
        return opt.t, {key: models.to_neutral(tensors, layouts) for key, tensors in opt.moments().items()}

    def load_optimizer_state(self, network: str, t: int, moments: dict[str, list[np.ndarray]]) -> None:
        opt, params = self._optimizer(network)
        layouts = getattr(self, network).layouts
        opt.set_state(t, {key: models.from_neutral(arrays, params, layouts) for key, arrays in moments.items()})


def _compile_options(device: torch.device) -> str:
    return "mode=reduce-overhead: CUDA graph replay" if device.type == "cuda" else "Inductor, C++ kernels"


# Graphs dynamo may keep per compiled function: one per shape of the step (a task, a width of a sweep) that one
# process trains, all reused by later trainers of that shape. Its default, 8, would end a longer grid's compiled
# cells in an error (fullgraph) or in eager steps.
RECOMPILE_LIMIT = 64


def _compiled(function, device: torch.device, fullgraph: bool = True):
    """torch.compile'd ``function``: with ``fullgraph`` as one graph (a graph break is an error, never a silent
    split); without, dynamo may split it (only where torch.optim breaks the graph itself, and at time_phases' marks).

    Static shapes (dynamic=False), as for any fixed-shape training: by default the second shape a process sees
    recompiles the shared step with symbolic sizes, which every later task then runs, so a cell's speed depended
    on the cells before it (measured, interleaved in one process, symbolic / static step time: parabola 1.11,
    gmm2 1.18, mnist 1.05, ring8 1.03; losses and weights bitwise equal).

    Dynamo breaks the graph at torch.autograd.grad unless trace_autograd_ops is on; it is switched on
    only around these calls (it is read while tracing, which happens on the first call).
    """
    compiled = torch.compile(function, fullgraph=fullgraph, dynamic=False,
                             mode="reduce-overhead" if device.type == "cuda" else None)

    def call(*args, **kwargs):
        with torch._dynamo.config.patch(trace_autograd_ops=True, recompile_limit=RECOMPILE_LIMIT):
            return compiled(*args, **kwargs)
    return call
