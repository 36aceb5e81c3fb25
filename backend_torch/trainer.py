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
* compiled, K steps (train_steps, issue 26): the K-step region, CompileOptions.region_steps steps of the schedule
  unrolled in one graph (as TF's K-step graph runs its tf.range loop in one graph), so dynamo's frame, its guards,
  AOTAutograd's runtime wrapper and Inductor's wrapper are paid once per region_steps steps; the region's graph
  uses Inductor's C++ wrapper. A K that is not a multiple of region_steps ends step by step, and K below it runs
  step by step. Where the region cannot be one graph (torch.optim's graph breaks) or fails to compile, K steps run
  step by step through the step's graph, and ``compiled_as`` records it. On CUDA the region is compiled with
  mode="reduce-overhead": one CUDA graph replay per region_steps steps, its inputs copied into static buffers by
  the replay; each replay's results are cloned before the next overwrites them. Dynamo's settings are made once
  when a compiled trainer is built (configure_dynamo), never around a call. The region's graph and the step's are
  optimised separately and may round differently in the last bits (common/tolerances.py K_STEPS_ATOL, tested).
"""
from __future__ import annotations

from dataclasses import dataclass

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
        # The compiled K-step region (train_steps): built on the first call with K >= region_steps. ``_ran`` names
        # the paths that have run, ``_region_failed`` why the region fell back (compiled_as says both).
        self._region, self._region_failed, self._ran = None, None, set()
        self.compile_options = COMPILE_OPTIONS  # the module's, as it was when this trainer was built
        self._base_compiled_as, self._native = "eager: op by op", False
        if mode == "compiled":
            self._native = spec.d_optimizer.kind == "native" or spec.g_optimizer.kind == "native"
            if self._native:
                # Dynamo guards torch.optim's step on the optimiser object, so each new trainer adds a cache entry
                # to the same code: a process that builds many (a grid of cells) pays a longer guard lookup each
                # call and, past the recompile limit (8), runs the step eager. Measured, parabola: 757 steps/s for
                # the first trainer, 235-490 for the next ten. Such a trainer starts from empty caches (the spec
                # optimisers' whole-step graph is reused across trainers instead: test_compiled_equals_eager).
                torch.compiler.reset()
            configure_dynamo()
            self._schedule = _compiled(self.schedule, device, fullgraph=not self._native,
                                       cpp_wrapper=self.compile_options.cpp_wrapper == "all",
                                       backend=self.compile_options.backend)
            how = _compile_options(device, self.compile_options.cpp_wrapper == "all")
            self._base_compiled_as = (f"whole step, split by torch.optim's graph breaks around step() ({how})"
                                      if self._native else f"whole step as one graph ({how})")

    @property
    def compiled_as(self) -> str:
        """How the mode ran the step, and, once train_steps has run in compiled mode, how it ran K steps: in the
        K-step region (``region_steps`` steps unrolled in one graph, one call per region_steps steps), or step by
        step through the one-step graph, with the reason (torch.optim's graph breaks, a region that did not
        compile, K below region_steps)."""
        notes = []
        if "region" in self._ran:
            wrapper = ", C++ wrapper" if self.compile_options.cpp_wrapper in ("region", "all") else ""
            notes.append(f"train_steps: {self._region_steps} steps unrolled per graph call{wrapper}")
        if self._region_failed:
            notes.append(f"train_steps: step by step, the K-step region fell back ({self._region_failed})")
        return "; ".join([self._base_compiled_as] + notes)

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
        if self.mode != "compiled":
            # A Python loop over the step: results stay on the device until the one conversion at the end.
            results = [self._schedule(real[i], noise[i], None if gp_eps is None else gp_eps[i],
                                      None if dropout is None else dropout[i]) for i in range(real.shape[0])]
            return torch.stack(results).cpu().numpy() if results else np.zeros((0, 4), self.dtype)
        count, size = real.shape[0], self._region_steps
        region = self._region_graph() if count >= size > 1 else None
        chunks = count // size if region is not None else 0
        results = []
        for c in range(chunks):  # size steps per call of the region's graph
            if self._region_failed:  # it failed to compile on the first call: the rest step by step below
                chunks = c
                break
            args = [None if t is None else t[c * size:(c + 1) * size] for t in tensors]
            if c == 0 or not self.compile_options.skip_guards:
                results.append(self._call_region(region, args))
            else:
                with _guards_skipped():
                    results.append(self._call_region(region, args))
        for i in range(chunks * size, count):  # what is left (K not a multiple of region_steps): one step per call
            results.append(self._replayed(self._schedule, (real[i], noise[i], None if gp_eps is None else gp_eps[i],
                                                           None if dropout is None else dropout[i]))[None])
        return torch.cat(results).cpu().numpy() if results else np.zeros((0, 4), self.dtype)

    # ---- the K-step region (compiled mode) -------------------------------------------------------------
    @property
    def _region_steps(self) -> int:
        return self.compile_options.region_steps

    def _region_schedule(self, real, noise, gp_eps, dropout):
        """``real.shape[0]`` steps of the schedule, unrolled (the count is static: one graph per count); (K, 4)."""
        return torch.stack([self.schedule(real[i], noise[i], None if gp_eps is None else gp_eps[i],
                                          None if dropout is None else dropout[i]) for i in range(real.shape[0])])

    def _region_graph(self):
        """The compiled K-step region, or None where train_steps runs step by step: torch.optim's own optimisers
        break the graph around every step() (a region would be as many graphs per step, compiled K times over),
        or the region failed to compile (then the failure is recorded and the step's graph is used from then on)."""
        if self._native or self._region_failed:
            if self._native and not self._region_failed:
                self._region_failed = "torch.optim breaks the graph around step(): no one-graph region"
            return None
        if self._region is None:
            self._region = _compiled(self._region_schedule, self.device, fullgraph=True,
                                     cpp_wrapper=self.compile_options.cpp_wrapper in ("region", "all"),
                                     backend=self.compile_options.backend)
        return self._region

    def _call_region(self, region, args):
        if "region" not in self._ran:  # the first call compiles: where the region fails, it fails here
            try:
                out = region(*args)
            except torch._dynamo.exc.TorchDynamoException as error:
                # Raised while tracing or compiling, before the graph ran: the state is untouched. From here on,
                # step by step through the step's graph.
                self._region_failed = f"{type(error).__name__}: {str(error).splitlines()[0][:200]}"
                return torch.stack([self._schedule(*(None if t is None else t[i] for t in args))
                                    for i in range(args[0].shape[0])])
            self._ran.add("region")
            return out.clone() if self.device.type == "cuda" else out
        return self._replayed(region, args)

    def _replayed(self, graph, args):
        """``graph(*args)``; on CUDA a CUDA graph replay (mode="reduce-overhead") writes its outputs into the same
        static buffers every time, so each call's results are copied out before the next call."""
        if self.device.type != "cuda":
            return graph(*args)
        torch.compiler.cudagraph_mark_step_begin()
        return graph(*args).clone()

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


def _compile_options(device: torch.device, cpp_wrapper: bool) -> str:
    if device.type == "cuda":
        return "mode=reduce-overhead: CUDA graph replay"
    return "Inductor, C++ kernels" + (", C++ wrapper" if cpp_wrapper else "")


@dataclass(frozen=True)
class CompileOptions:
    """How compiled mode builds its graphs (a trainer reads the module's COMPILE_OPTIONS when it is built). Each
    lever is measured on its own by ``python -m benchmarks.perf --figures d`` (docs/speed.md has the figures).

    region_steps  train_steps(K) runs K // region_steps calls of one graph of region_steps steps unrolled (the
                  K-step region), then the rest step by step; K below it runs step by step. 1: no region.
                  Measured on parabola (1 thread, busy 2-core machine): 4, 8 and 16 steps within noise of each
                  other, 2.1x the old per-call step; compile time grows with it (8: 30-60 s, 16: 70 s).
    cpp_wrapper   Inductor's C++ wrapper on CPU (torch._inductor.config.cpp_wrapper): the graph's kernels called
                  from C++, not from a Python function. "region": the K-step region's graph only (measured: 1.35x
                  there); "all": the one-step graph too (1.2x per step, but 10-15 s more compile for every compiled
                  trainer, which short runs and the tests never win back); "off". Never on CUDA (CUDA graphs
                  replace the wrapper).
    skip_guards   within one train_steps call, every call of the region after the first skips dynamo's guard
                  evaluation (torch.compiler.set_stance(skip_guard_eval_unsafe=True)): between those calls only
                  tensors of the same shapes change, and the first call of the same call evaluated every guard.
    backend       torch.compile's backend: "inductor"; the tests may pick "aot_eager" (the same trace, eager kernels).
    """
    region_steps: int = 8
    cpp_wrapper: str = "region"
    skip_guards: bool = True
    backend: str = "inductor"


COMPILE_OPTIONS = CompileOptions()

# Graphs dynamo may keep per compiled function: one per shape of the step (a task, a width of a sweep) that one
# process trains, all reused by later trainers of that shape. Its default, 8, would end a longer grid's compiled
# cells in an error (fullgraph) or in eager steps.
RECOMPILE_LIMIT = 64


def configure_dynamo() -> None:
    """Dynamo's settings for the compiled step, set once for the process when a compiled trainer is built (they
    are read while tracing, which may happen on any call: a new shape recompiles): torch.autograd.grad traced
    into the graph (trace_autograd_ops; else dynamo breaks the graph there) and RECOMPILE_LIMIT. No context is
    entered per call (measured: benchmarks/perf.py's lever table, "config.patch per call")."""
    torch._dynamo.config.trace_autograd_ops = True
    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, RECOMPILE_LIMIT)


class _guards_skipped:
    """Dynamo's guards skipped for the calls inside (torch.compiler.set_stance(skip_guard_eval_unsafe=True)),
    keeping whatever stance is in force."""

    def __enter__(self):
        self.context = torch.compiler.set_stance(torch._dynamo.eval_frame._stance.stance, skip_guard_eval_unsafe=True)
        self.context.__enter__()

    def __exit__(self, *exc):
        return self.context.__exit__(*exc)


def _compiled(function, device: torch.device, fullgraph: bool = True, cpp_wrapper: bool = False,
              backend: str = "inductor"):
    """torch.compile'd ``function``: with ``fullgraph`` as one graph (a graph break is an error, never a silent
    split); without, dynamo may split it (only where torch.optim breaks the graph itself, and at time_phases' marks).

    Static shapes (dynamic=False), as for any fixed-shape training: by default the second shape a process sees
    recompiles the shared step with symbolic sizes, which every later task then runs, so a cell's speed depended
    on the cells before it (measured, interleaved in one process, symbolic / static step time: parabola 1.11,
    gmm2 1.18, mnist 1.05, ring8 1.03; losses and weights bitwise equal).

    Dynamo's own settings are configure_dynamo()'s, made once; nothing wraps the call.
    """
    if device.type == "cuda":  # CUDA graphs: Inductor's mode; another backend (the tests') runs without them
        mode = "reduce-overhead" if backend == "inductor" else None
        return torch.compile(function, fullgraph=fullgraph, dynamic=False, mode=mode, backend=backend)
    options = {"cpp_wrapper": True} if cpp_wrapper and backend == "inductor" else None
    return torch.compile(function, fullgraph=fullgraph, dynamic=False, backend=backend, options=options)
