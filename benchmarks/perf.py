"""`python -m benchmarks.perf [--threads N] [--quick] [--out FILE]`: the suite's four performance figures.

a. Harness overhead: one iteration of the real loop of a cell (benchmarks/cell.py's CellLoop.advance:
   Trainer.train_step plus input draw, clocks, RunLog.add, progress bar, loss check) against a minimal
   hand-written loop in the same framework and mode (nn.Sequential + torch.optim.Adam; tf.function + Keras Adam;
   jax.jit + optax.adam),
   on the same model, batch, step semantics and input stream. Blocks alternate (ABAB) to cancel drift; each
   figure is the median of per-iteration wall times (input draw included on both sides).
b. Achieved GFLOP/s on the `mnist` model (seed 003) at batch 128 for each mode, against the step's floor and the
   sgemm peak measured in the same run (FLOPs: common/flops.py), with what the step is made of: D/G phase times,
   the time of its matmuls alone, and the optimiser updates (a memory-bound pass over all parameters). The floor
   (``step_floor_seconds``) is the step's matmuls timed alone at their shapes in that framework plus the optimiser
   updates' least memory traffic (parameters, gradients and moments read and written once) at the copy bandwidth
   measured in the same run; "% of floor" = floor / step time (each row's ``pct_of_floor``). Beside it, the
   machine's floor: each product at the fastest framework's matmul (``pct_of_machine_floor``), since XLA can run a
   step's products faster together than alone and so beat its own floor.
c. Steps/s on `parabola` (tiny, overhead-bound) with train_steps(K): K steps per call. K steps are checked to
   give results and weights identical to K single steps on the same inputs (``check_k_steps``) before timing.
d. PyTorch's compiled step lever by lever on `parabola` (TORCH_LEVERS: the per-call config.patch as before issue
   26, the C++ wrapper, K steps per call, the K-step region, dynamo's guards skipped), with TF's fast modes, all
   built first and then timed in interleaved rounds (A B C ... A B C ...), so that the machine's load falls on every
   row alike: the before/after of issue 26 measured in one run.
Every timed figure records the machine's load around it (benchmarks/timing.py load_since); a figure taken while
other processes used the cores says so. Nothing here is asserted against a goal: the figures are printed (and
written to --out as JSON) as measured.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import time
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from benchmarks import timing  # noqa: E402
from benchmarks.cell import Cell, CellLoop, RunOptions, next_inputs, time_steps  # noqa: E402
from common import checkpoint, tasks, tolerances  # noqa: E402
from common.backend import get_backend  # noqa: E402
from common.flops import optimizer_traffic_bytes, train_step_flops  # noqa: E402
from common.init import init_weights  # noqa: E402
from common.stream import Stream  # noqa: E402

OVERHEAD_TASK = "parabola"  # overhead matters most on the tiniest model
ALL_MODES = (("torch", "eager"), ("torch", "compiled"), ("tf", "eager"), ("tf", "compiled"), ("tf", "xla"),
             ("jax", "eager"), ("jax", "compiled"))
OVERHEAD_MODES = ALL_MODES
GFLOPS_TASK, GFLOPS_BATCH = "mnist", 128
FAST_MODES = (("torch", "eager"), ("torch", "compiled"), ("tf", "compiled"), ("tf", "xla"), ("jax", "compiled"))
# Figure c: (backend, mode, optimiser implementation). Eager with the framework's own optimiser is each framework
# out of the box; the spec optimisers in every fast mode; torch.optim's foreach and fused kernels beside them.
STEPS_CONFIGS = tuple((b, m, "spec") for b, m in FAST_MODES) + (
    ("torch", "eager", "native"), ("torch", "eager", "native-foreach"), ("torch", "compiled", "native"),
    ("torch", "compiled", "native-fused"), ("tf", "eager", "native"), ("tf", "compiled", "native"), ("tf", "xla", "native"),
    ("jax", "eager", "native"), ("jax", "compiled", "native"))
QUICK_STEPS_CONFIGS = tuple((b, m, "spec") for b, m in FAST_MODES) + (("torch", "eager", "native"), ("tf", "eager", "native"),
                                                                     ("jax", "eager", "native"))
# The goals the issue sets (printed against the figures, never asserted).
GOAL_STEPS_PER_S, GOAL_PCT_OF_PEAK, GOAL_OVERHEAD_PCT = 5000.0, 70.0, 5.0
GOAL_PCT_OF_FLOOR, GOAL_TORCH_OVER_TF = 80.0, 0.75  # issue 26: each best >= 80% of its floor; PyTorch >= 0.75x TF
BLOCK = 50  # steps per ABAB block
SEED = 0


def spec_of(task_name: str, batch_size: int | None = None, optimizer: str = "spec"):
    spec, _ = tasks.configure(tasks.get_task(task_name), n_examples=100_000, steps=1, batch_size=batch_size,
                              optimizer_impl=optimizer)
    return spec


def stream_of(task_name: str, spec, seed: int = SEED) -> Stream:
    """The task's real data stream (MNIST: the suite's loader chain, which says where its digits came from)."""
    return Stream(spec, tasks.get_task(task_name).load().source, seed)


# ----------------------------------------------------------------------------- minimal hand-written loops


def plain_torch_step(spec, weights, mode: str):
    """A plain PyTorch loop: nn.Sequential, torch.optim.Adam, loss.backward(); torch.compile'd nets in compiled mode."""
    import torch
    import torch.nn.functional as F

    from backend_torch import models

    g, d = models.build_generator(spec), models.build_discriminator(spec)
    models.load_weights(g, weights["generator"])
    models.load_weights(d, weights["discriminator"])
    g_opt = torch.optim.Adam(g.parameters(), lr=spec.g_optimizer.lr, betas=(spec.g_optimizer.beta1, spec.g_optimizer.beta2))
    d_opt = torch.optim.Adam(d.parameters(), lr=spec.d_optimizer.lr, betas=(spec.d_optimizer.beta1, spec.d_optimizer.beta2))
    if mode == "compiled":
        g, d = torch.compile(g), torch.compile(d)
    minimax = spec.loss.name == "minimax"

    def g_update(z):
        g_opt.zero_grad(set_to_none=True)
        fake = g(z)
        logits = d(fake)
        g_loss = -F.softplus(logits).mean() if minimax else F.softplus(-logits).mean()
        g_loss.backward()
        g_opt.step()
        return g_loss, fake.detach()

    def d_update(x, fake):
        d_opt.zero_grad(set_to_none=True)
        d_loss = F.softplus(-d(x)).mean() + F.softplus(d(fake)).mean()
        d_loss.backward()
        d_opt.step()
        return d_loss

    def step(real, noise, gp_eps=None):
        real, noise = torch.from_numpy(real), torch.from_numpy(noise)
        if spec.updates.order == "g_then_d":  # seed 000: D trains on the fake G was just trained through
            g_loss, fake = g_update(noise[0] if spec.updates.reuse_fake else noise[1])
            d_loss = d_update(real[0], fake if spec.updates.reuse_fake else g(noise[0]).detach())
        else:
            with torch.no_grad():
                fake = g(noise[0])
            d_loss = d_update(real[0], fake)
            g_loss, _ = g_update(noise[1])
        return d_loss.item(), g_loss.item()
    return step


def plain_tf_step(spec, weights, mode: str):
    """A plain TensorFlow loop: GradientTape, Keras Adam; one tf.function (jit_compile in xla mode), none in eager."""
    import keras
    import tensorflow as tf

    from backend_tf import models

    g, d = models.build_generator(spec), models.build_discriminator(spec)
    models.load_weights(g, weights["generator"])
    models.load_weights(d, weights["discriminator"])
    g_opt = keras.optimizers.Adam(spec.g_optimizer.lr, spec.g_optimizer.beta1, spec.g_optimizer.beta2)
    d_opt = keras.optimizers.Adam(spec.d_optimizer.lr, spec.d_optimizer.beta1, spec.d_optimizer.beta2)
    g_opt.build(g.trainable_variables)
    d_opt.build(d.trainable_variables)
    minimax, order, reuse = spec.loss.name == "minimax", spec.updates.order, spec.updates.reuse_fake

    def g_update(z):
        with tf.GradientTape() as tape:
            fake = g(z)
            logits = d(fake)
            g_loss = -tf.reduce_mean(tf.nn.softplus(logits)) if minimax else tf.reduce_mean(tf.nn.softplus(-logits))
        g_opt.apply_gradients(zip(tape.gradient(g_loss, g.trainable_variables), g.trainable_variables))
        return g_loss, fake

    def d_update(x, fake):
        with tf.GradientTape() as tape:
            d_loss = tf.reduce_mean(tf.nn.softplus(-d(x))) + tf.reduce_mean(tf.nn.softplus(d(fake)))
        d_opt.apply_gradients(zip(tape.gradient(d_loss, d.trainable_variables), d.trainable_variables))
        return d_loss

    def graph_step(real, noise):
        if order == "g_then_d":
            g_loss, fake = g_update(noise[0] if reuse else noise[1])
            d_loss = d_update(real[0], fake if reuse else g(noise[0]))
        else:
            d_loss = d_update(real[0], g(noise[0]))
            g_loss, _ = g_update(noise[1])
        return tf.stack([d_loss, g_loss])
    if mode != "eager":
        graph_step = tf.function(graph_step, jit_compile=mode == "xla")

    def step(real, noise, gp_eps=None):
        return tuple(graph_step(tf.convert_to_tensor(real), tf.convert_to_tensor(noise)).numpy())
    return step


def plain_jax_step(spec, weights, mode: str):
    """A plain JAX loop: the Flax modules, optax.adam, jax.value_and_grad; the whole step one jax.jit (donated
    state) in compiled mode, none in eager."""
    import jax
    import jax.numpy as jnp
    import optax

    from backend_jax import models

    g, d = models.build_generator(spec), models.build_discriminator(spec)
    models.load_weights(g, weights["generator"])
    models.load_weights(d, weights["discriminator"])
    g_tx = optax.adam(spec.g_optimizer.lr, spec.g_optimizer.beta1, spec.g_optimizer.beta2)
    d_tx = optax.adam(spec.d_optimizer.lr, spec.d_optimizer.beta1, spec.d_optimizer.beta2)
    minimax, order, reuse = spec.loss.name == "minimax", spec.updates.order, spec.updates.reuse_fake

    def forward(model, params, x):
        return model.apply(params, [], x)[0]

    def g_update(state, z):
        gp, dp, g_opt, d_opt = state

        def loss(params):
            fake = forward(g, params, z)
            logits = forward(d, dp, fake)
            return (-jnp.mean(jax.nn.softplus(logits)) if minimax else jnp.mean(jax.nn.softplus(-logits))), fake
        (g_loss, fake), grads = jax.value_and_grad(loss, has_aux=True)(gp)
        updates, g_opt = g_tx.update(grads, g_opt, gp)
        return (optax.apply_updates(gp, updates), dp, g_opt, d_opt), g_loss, fake

    def d_update(state, x, fake):
        gp, dp, g_opt, d_opt = state

        def loss(params):
            return jnp.mean(jax.nn.softplus(-forward(d, params, x))) + jnp.mean(jax.nn.softplus(forward(d, params, fake)))
        d_loss, grads = jax.value_and_grad(loss)(dp)
        updates, d_opt = d_tx.update(grads, d_opt, dp)
        return (gp, optax.apply_updates(dp, updates), g_opt, d_opt), d_loss

    def graph_step(state, real, noise):
        if order == "g_then_d":
            state, g_loss, fake = g_update(state, noise[0] if reuse else noise[1])
            state, d_loss = d_update(state, real[0], fake if reuse else forward(g, state[0], noise[0]))
        else:
            state, d_loss = d_update(state, real[0], forward(g, state[0], noise[0]))
            state, g_loss, _ = g_update(state, noise[1])
        return state, jnp.stack([d_loss, g_loss])
    if mode != "eager":
        graph_step = jax.jit(graph_step, donate_argnums=0)
    state = [(g.params, d.params, g_tx.init(g.params), d_tx.init(d.params))]

    def step(real, noise, gp_eps=None):
        if mode == "eager":  # op by op: on the device once, not at every op
            real, noise = jnp.asarray(real), jnp.asarray(noise)
        # compiled: numpy straight into the jitted step, whose dispatch copies it in (a jnp.asarray first adds a
        # Python device_put and an asynchronous copy the step waits for: ~80 us of a 240 us parabola step)
        state[0], losses = graph_step(state[0], real, noise)
        return tuple(np.asarray(losses))
    return step


PLAIN_STEPS = {"torch": plain_torch_step, "tf": plain_tf_step, "jax": plain_jax_step}


# ----------------------------------------------------------------------------- a. harness overhead


def harness_block(loop: CellLoop, n: int) -> list[float]:
    """n iterations of the real loop of a cell (benchmarks/cell.py); the wall time of each."""
    times = []
    for _ in range(n):
        begin = time.perf_counter()
        loop.advance()
        times.append(time.perf_counter() - begin)
    return times


def plain_block(step, stream, n: int) -> list[float]:
    times = []
    for _ in range(n):
        begin = time.perf_counter()
        step(**stream.next().as_kwargs())
        times.append(time.perf_counter() - begin)
    return times


def harness_overhead(backend: str, mode: str, steps: int, task_name: str = OVERHEAD_TASK) -> dict:
    """Median per-step time of the harness path and of the plain loop, measured in alternating blocks."""
    spec = spec_of(task_name)
    weights = init_weights(spec, SEED)
    cell = Cell(tasks.get_task(task_name), backend, mode, spec, steps=10**9, seed=SEED)  # never runs out
    trainer = get_backend(backend).build(spec, weights, device="cpu", mode=mode)
    # The bar and log lines cost the same written to a buffer, unseen; no checkpoints, nothing stored.
    loop = CellLoop(cell, trainer, stream_of(task_name, spec), RunOptions(out="", device="cpu"), out=io.StringIO())
    plain, plain_stream = PLAIN_STEPS[backend](spec, weights, mode), stream_of(task_name, spec)
    started = time.perf_counter()
    harness_block(loop, BLOCK)  # warm-up: traces and compiles, first-call costs
    plain_block(plain, plain_stream, BLOCK)
    warmup_s = time.perf_counter() - started
    harness_times, plain_times = [], []
    for _ in range(max(1, steps // BLOCK)):
        harness_times += harness_block(loop, BLOCK)
        plain_times += plain_block(plain, plain_stream, BLOCK)
    h, p = float(np.median(harness_times)), float(np.median(plain_times))
    return {"task": task_name, "backend": backend, "mode": mode, "harness_s": h, "plain_s": p,
            "overhead_pct": 100.0 * (h / p - 1.0), "steps_each": len(harness_times), "warmup_s": warmup_s}


# ----------------------------------------------------------------------------- b. GFLOP/s on mnist


def median_step_time(backend: str, trainer, stream, steps: int, warmup: int = 3) -> float:
    """Median train_step time of the GFLOPS task on the cell loop's own clock (benchmarks/cell.py time_steps)."""
    cell = Cell(tasks.get_task(GFLOPS_TASK), backend, trainer.mode, trainer.spec, steps=max(1, warmup) + steps,
                seed=SEED)
    return float(np.median(time_steps(cell, trainer, stream, warmup)[1]))


def optimizer_seconds(backend: str, trainer, repeats: int = 20) -> float:
    """Both spec optimiser updates of one step (D then G) on zero gradients, run as the trainer's mode runs them
    (eager: op by op; torch compiled: one torch.compile'd graph; TF compiled modes: one tf.function; JAX compiled:
    one jax.jit). Changes the trainer's state (JAX: none): call it after the trainer's timings."""
    if backend == "jax":
        import jax
        import jax.numpy as jnp

        grads = [[jnp.zeros_like(p) for p in net.params] for net in (trainer.discriminator, trainer.generator)]

        def pure(states, params):
            return [opt.tx.update(state, p, g) for opt, state, p, g in
                    zip((trainer.d_opt, trainer.g_opt), states, params, grads)]
        graph = pure if trainer.mode == "eager" else jax.jit(pure)

        def update():
            jax.block_until_ready(graph([trainer.d_opt.state, trainer.g_opt.state],
                                        [trainer.discriminator.params, trainer.generator.params]))
    elif backend == "torch":
        import torch
        grads = [[torch.zeros_like(p) for p in params] for params in (trainer.d_params, trainer.g_params)]

        def both():
            trainer.d_opt.apply(grads[0])
            trainer.g_opt.apply(grads[1])
        update = both if trainer.mode == "eager" else torch.compile(both, fullgraph=True)
    else:
        import tensorflow as tf
        grads = [[tf.zeros_like(v) for v in variables] for variables in (trainer.d_vars, trainer.g_vars)]

        def both():
            trainer.d_opt.apply(grads[0])
            trainer.g_opt.apply(grads[1])
            return trainer.g_opt.t.read_value()
        graph = both if trainer.mode == "eager" else tf.function(both, jit_compile=trainer.mode == "xla")

        def update():
            graph().numpy()
    update()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        update()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def gflops_figure(steps: int, modes=FAST_MODES) -> dict:
    spec = spec_of(GFLOPS_TASK, GFLOPS_BATCH)
    weights = init_weights(spec, SEED)
    flops = train_step_flops(spec)
    machine = timing.machine_peak([get_backend(name) for name in sorted({b for b, _ in modes})])
    out = {"task": GFLOPS_TASK, "batch": GFLOPS_BATCH, "flops_per_step": flops["total"], "params": spec.parameter_count,
           **machine, "memory_bandwidth_gbs": timing.memory_bandwidth_gbs(), "modes": []}
    for backend, mode in modes:
        trainer = get_backend(backend).build(spec, weights, device="cpu", mode=mode)
        stream = stream_of(GFLOPS_TASK, spec)
        before = timing.load_snapshot()
        median = median_step_time(backend, trainer, stream, steps)
        load = timing.load_since(before)
        phases = [trainer.time_phases(**stream.next().as_kwargs()) for _ in range(5)]
        row = {"backend": backend, "mode": mode, "median_step_s": median, "gflops": flops["total"] / median / 1e9,
               "d_update_s": float(np.median([p["d_update"] for p in phases])),
               "g_update_s": float(np.median([p["g_update"] for p in phases])),
               "optimizer_s": optimizer_seconds(backend, trainer), "load": load}
        row["pct_of_peak"] = 100.0 * row["gflops"] / machine["peak_gflops"]
        out["modes"].append(row)
    out["optimizer_traffic_bytes"] = traffic = optimizer_traffic_bytes(spec)
    out["optimizer_floor_s"] = traffic / (out["memory_bandwidth_gbs"] * 1e9)
    for backend in sorted({b for b, _ in modes}):
        seconds, per_shape = timing.matmul_only_seconds(spec, get_backend(backend))
        out[f"{backend}_matmul_only_s"] = seconds
        out[f"{backend}_matmul_gflops_by_shape"] = per_shape
        out[f"{backend}_floor_s"] = timing.step_floor_seconds(seconds, traffic, out["memory_bandwidth_gbs"])
    backends = [get_backend(name) for name in sorted({b for b, _ in modes})]
    out["machine_floor_s"] = timing.step_floor_seconds(timing.fastest_matmul_seconds(spec, backends), traffic,
                                                       out["memory_bandwidth_gbs"])
    for row in out["modes"]:
        row["floor_s"] = out[f"{row['backend']}_floor_s"]
        row["pct_of_floor"] = 100.0 * row["floor_s"] / row["median_step_s"]
        row["pct_of_machine_floor"] = 100.0 * out["machine_floor_s"] / row["median_step_s"]
    return out


# ----------------------------------------------------------------------------- c. steps/s on parabola


def check_k_steps(backend: str, mode: str, k: int, task_name: str = OVERHEAD_TASK, seed: int = SEED,
                  optimizer: str = "spec") -> float:
    """The largest difference between train_steps(K) and K train_step calls on the same inputs, over the results
    and the final weights; AssertionError beyond common/tolerances.py K_STEPS_ATOL (TF traces the two separately)."""
    spec = spec_of(task_name, optimizer=optimizer)
    weights = init_weights(spec, seed)
    module = get_backend(backend)
    one, many = (module.build(spec, weights, device="cpu", mode=mode) for _ in range(2))
    inputs = next_inputs(stream_of(task_name, spec, seed), k, stacked=True)
    singles = [one.train_step(**{name: None if v is None else v[i] for name, v in inputs.items()}) for i in range(k)]
    stacked = many.train_steps(**inputs)
    gaps = [float(np.abs(values - np.float32([s[key] for s in singles])).max()) for key, values in stacked.items()]
    a, b = one.get_weights(), many.get_weights()
    gaps += [float(np.abs(x - y).max()) for net in a for x, y in zip(a[net], b[net])]
    assert max(gaps) <= tolerances.K_STEPS_ATOL, (f"{backend} {mode}: train_steps({k}) differs from {k} train_step "
                                                 f"calls by {max(gaps):.2g} > {tolerances.K_STEPS_ATOL:g}")
    return max(gaps)


def steps_per_second(backend: str, mode: str, k: int, calls: int, task_name: str = OVERHEAD_TASK,
                     optimizer: str = "spec") -> dict:
    spec = spec_of(task_name, optimizer=optimizer)
    trainer = get_backend(backend).build(spec, init_weights(spec, SEED), device="cpu", mode=mode)
    stream = stream_of(task_name, spec)
    trainer.train_steps(**next_inputs(stream, k, stacked=True))  # warm-up: trace/compile for this K
    times = []
    before = timing.load_snapshot()
    for _ in range(calls):
        inputs = next_inputs(stream, k, stacked=True)
        start = time.perf_counter()
        trainer.train_steps(**inputs)
        times.append(time.perf_counter() - start)
    median = float(np.median(times))
    return {"backend": backend, "mode": mode, "optimizer": optimizer, "k": k, "steps_per_s": k / median,
            "steps_timed": k * calls, "compiled_as": trainer.compiled_as, "load": timing.load_since(before)}


# ----------------------------------------------------------------------------- d. PyTorch compiled's levers, A/B


# (label, K or None for the run's K, backend_torch.trainer.CompileOptions changes, the old per-call config.patch).
# The first row is the compiled step as it was before issue 26: torch._dynamo.config.patch entered around every
# call of the step's graph, one step per call. Each row after it changes one lever.
TORCH_LEVERS = (
    ("before: config.patch per call, K=1", 1, {"region_steps": 1, "skip_guards": False, "cpp_wrapper": "off"}, True),
    ("no per-call patch, K=1", 1, {"region_steps": 1, "skip_guards": False, "cpp_wrapper": "off"}, False),
    ("no per-call patch, C++ wrapper, K=1", 1, {"region_steps": 1, "skip_guards": False, "cpp_wrapper": "all"}, False),
    ("K steps, one step per graph call", None, {"region_steps": 1, "skip_guards": False, "cpp_wrapper": "off"}, False),
    ("K-step region, guards evaluated", None, {"skip_guards": False, "cpp_wrapper": "off"}, False),
    ("K-step region, guards skipped", None, {"skip_guards": True, "cpp_wrapper": "off"}, False),
    ("K-step region, guards skipped, C++ wrapper", None, {"skip_guards": True, "cpp_wrapper": "region"}, False),
)
LEVER_TF = (("tf", "xla"), ("tf", "compiled"))  # TF's fast modes at the same K, timed in the same rounds


def _patched_per_call(trainer) -> None:
    """The compiled step called as before issue 26: inside torch._dynamo.config.patch(...) every call."""
    import torch

    from backend_torch.trainer import RECOMPILE_LIMIT

    graph = trainer._schedule

    def call(*args):
        with torch._dynamo.config.patch(trace_autograd_ops=True, recompile_limit=RECOMPILE_LIMIT):
            return graph(*args)
    trainer._schedule = call


def lever_trainers(k: int, backends, task_name: str = OVERHEAD_TASK) -> list[dict]:
    """The trainers of figure d, built and warmed up (compiled) for their K: PyTorch's compiled spec step with each
    lever of TORCH_LEVERS, and TF's fast modes (LEVER_TF); each row says what ran (compiled_as) and its first
    call's seconds (trace and compile included)."""
    import dataclasses

    spec = spec_of(task_name)
    weights = init_weights(spec, SEED)
    rows = []
    if "torch" in backends:
        from backend_torch import trainer as torch_trainer
        default = torch_trainer.COMPILE_OPTIONS
        for label, steps, changes, patched in TORCH_LEVERS:
            torch_trainer.COMPILE_OPTIONS = dataclasses.replace(default, **changes)
            try:
                trainer = get_backend("torch").build(spec, weights, device="cpu", mode="compiled")
            finally:
                torch_trainer.COMPILE_OPTIONS = default
            if patched:
                _patched_per_call(trainer)
            rows.append({"backend": "torch", "mode": "compiled", "lever": label, "k": steps or k, "trainer": trainer})
    if "tf" in backends:
        for backend, mode in LEVER_TF:
            rows.append({"backend": backend, "mode": mode, "lever": f"TF {mode}, K steps", "k": k,
                         "trainer": get_backend(backend).build(spec, weights, device="cpu", mode=mode)})
    if "jax" in backends:  # jax.jit's K steps: one lax.scan
        rows.append({"backend": "jax", "mode": "compiled", "lever": "JAX jit, K steps", "k": k,
                     "trainer": get_backend("jax").build(spec, weights, device="cpu", mode="compiled")})
    for row in rows:
        row["stream"] = stream_of(task_name, spec)
        start = time.perf_counter()
        row["trainer"].train_steps(**next_inputs(row["stream"], row["k"], stacked=True))
        row["first_call_s"] = time.perf_counter() - start
        row["compiled_as"] = row["trainer"].compiled_as
    return rows


def levers_figure(k: int, rounds: int, seconds_per_turn: float, backends) -> dict:
    """Figure d: every row of lever_trainers timed in ``rounds`` rounds, each row one turn of about
    ``seconds_per_turn`` per round in the same order (ABCD ABCD ...), so that a change of the machine's load
    falls on every row alike. Steps/s per row: the median over its calls; the load (timing.load_since) over
    the whole timing."""
    rows = lever_trainers(k, backends)
    per_call = {id(row): [] for row in rows}
    before = timing.load_snapshot()
    for _ in range(rounds):
        for row in rows:
            turn_start = time.perf_counter()
            while time.perf_counter() - turn_start < seconds_per_turn:
                inputs = next_inputs(row["stream"], row["k"], stacked=True)
                start = time.perf_counter()
                row["trainer"].train_steps(**inputs)
                per_call[id(row)].append((time.perf_counter() - start) / row["k"])
    load = timing.load_since(before)
    out = []
    for row in rows:
        times = np.asarray(per_call[id(row)])
        out.append({"backend": row["backend"], "mode": row["mode"], "lever": row["lever"], "k": row["k"],
                    "steps_per_s": float(1.0 / np.median(times)), "p25_steps_per_s": float(1 / np.percentile(times, 75)),
                    "p75_steps_per_s": float(1 / np.percentile(times, 25)), "calls": int(times.size),
                    "first_call_s": row["first_call_s"], "compiled_as": row["compiled_as"]})
    return {"task": OVERHEAD_TASK, "k": k, "rounds": rounds, "rows": out, "load": load}


def xla_fusion(task_name: str = GFLOPS_TASK, batch: int = GFLOPS_BATCH) -> dict:
    """Whether XLA fused the optimiser update into the step: in the optimised HLO of TF's XLA single step, how many
    fusions there are and which elementwise ops of the update (sqrt, divide) still run outside any fusion."""
    spec = spec_of(task_name, batch)
    trainer = get_backend("tf").build(spec, init_weights(spec, SEED), device="cpu", mode="xla")
    inputs = stream_of(task_name, spec).next()
    tensors = [t for t in trainer._tensors(inputs.real, inputs.noise, inputs.gp_eps, stacked=False) if t is not None]
    # device_name given (deprecated, hence the filter): without it TF finds the device by drawing an unseeded random
    # number, which op determinism forbids (tensorflow/python/eager/polymorphic_function/compiler_ir.py)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        hlo = trainer._step_fn.experimental_get_compiler_ir(*tensors)(stage="optimized_hlo", device_name="/device:CPU:0")
    entry = hlo[hlo.index("\nENTRY"):]
    entry = entry[:entry.index("\n}")]
    unfused = [line.split("=")[0].strip() for line in entry.splitlines()
               if any(f" {op}(" in line for op in ("sqrt", "divide", "rsqrt"))]
    return {"fusions": hlo.count(" fusion("), "unfused_update_ops": unfused}


def torch_ops_per_step(task_name: str = OVERHEAD_TASK) -> int:
    """How many aten ops one eager torch step dispatches (torch.profiler), the unit of its per-step overhead."""
    import torch

    spec = spec_of(task_name)
    trainer = get_backend("torch").build(spec, init_weights(spec, SEED), device="cpu", mode="eager")
    stream = stream_of(task_name, spec)
    trainer.train_step(**stream.next().as_kwargs())
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        trainer.train_step(**stream.next().as_kwargs())
    # Top-level ops only: an op called from inside another (aten::linear -> aten::addmm) is not a dispatch of its own.
    return sum(1 for event in prof.events() if event.name.startswith("aten::") and event.cpu_parent is None)


# ----------------------------------------------------------------------------- the command


def onednn_subprocess(steps: int, threads: int | None) -> dict | None:
    """TF's mnist figure again in a fresh process with TF_ENABLE_ONEDNN_OPTS=1 (read once, at TF's import)."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "onednn.json")
        command = [sys.executable, "-m", "benchmarks.perf", "--figures", "b", "--backends", "tf", "--gflops-steps",
                   str(steps), "--out", path] + (["--threads", str(threads)] if threads else [])
        env = dict(os.environ, TF_ENABLE_ONEDNN_OPTS="1")
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            print(f"oneDNN run failed: {done.stderr[-500:]}")
            return None
        with open(path) as file:
            return json.load(file)["b"]


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.perf", description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, help="intra-op threads for both frameworks (default: theirs)")
    parser.add_argument("--quick", action="store_true", help="fewer steps: the whole run in about 2 minutes")
    parser.add_argument("--out", help="write the figures as JSON to this file")
    parser.add_argument("--figures", default="abcd", help="which figures: any of a, b, c, d (default abcd)")
    parser.add_argument("--backends", nargs="+", default=["torch", "tf"], choices=["torch", "tf", "jax"])
    parser.add_argument("--gflops-steps", type=int, help="timed steps per mode for figure b")
    parser.add_argument("--onednn", action="store_true", help="figure b for TF again with TF_ENABLE_ONEDNN_OPTS=1")
    return parser


def main(argv=None) -> int:
    args = make_parser().parse_args(argv)
    configured = {name: get_backend(name).configure(threads=args.threads, deterministic=True) for name in args.backends}
    overhead_steps, gflops_steps = (200, 15) if args.quick else (400, 40)
    gflops_steps = args.gflops_steps or gflops_steps
    k, calls = (100, 10) if args.quick else (200, 20)
    report = {"threads": args.threads, "configure": configured, "load_avg": os.getloadavg(), "quick": args.quick}

    if "a" in args.figures:
        report["a"] = []
        for backend, mode in OVERHEAD_MODES:
            if backend not in args.backends:
                continue
            row = harness_overhead(backend, mode, overhead_steps)
            report["a"].append(row)
            print(f"harness overhead, {backend} {mode}, {row['task']}: {row['overhead_pct']:+.1f}% (harness "
                  f"{1e3 * row['harness_s']:.3f} ms vs plain {1e3 * row['plain_s']:.3f} ms per step, "
                  f"{row['steps_each']} steps each)", flush=True)

    if "b" in args.figures:
        modes = [(b, m) for b, m in FAST_MODES if b in args.backends]
        report["b"] = b = gflops_figure(gflops_steps, modes)
        print(f"sgemm peak {b['peak_gflops']:.1f} GFLOP/s ({', '.join(f'{n} {v:.1f}' for n, v in b['sgemm_gflops'].items())}); "
              f"memory copy bandwidth {b['memory_bandwidth_gbs']:.1f} GB/s; {b['params']} parameters", flush=True)
        for row in b["modes"]:
            note = timing.load_note(row["load"])
            print(f"GFLOP/s, {row['backend']} {row['mode']}, {b['task']} batch {b['batch']}: {row['gflops']:.1f}: "
                  f"{row['pct_of_floor']:.0f}% of the step's floor ({row['pct_of_machine_floor']:.0f}% of the machine's), "
                  f"{row['pct_of_peak']:.0f}% of sgemm peak (step "
                  f"{1e3 * row['median_step_s']:.1f} ms: D {1e3 * row['d_update_s']:.1f} + G {1e3 * row['g_update_s']:.1f}"
                  f" ms; optimisers alone {1e3 * row['optimizer_s']:.1f} ms){f'; {note}' if note else ''}", flush=True)
        for backend in sorted({r["backend"] for r in b["modes"]}):
            matmuls = b[f"{backend}_matmul_only_s"]
            print(f"  {backend}: the step's floor {1e3 * b[f'{backend}_floor_s']:.1f} ms = its matmuls alone "
                  f"{1e3 * matmuls:.1f} ms ({b['flops_per_step'] / matmuls / 1e9:.1f} GFLOP/s, "
                  f"{100 * b['flops_per_step'] / matmuls / 1e9 / b['peak_gflops']:.0f}% of peak) + the optimisers' least "
                  f"traffic {b['optimizer_traffic_bytes'] / 1e6:.0f} MB at {b['memory_bandwidth_gbs']:.1f} GB/s "
                  f"{1e3 * b['optimizer_floor_s']:.1f} ms; matmul GFLOP/s per shape (m x k x n): "
                  + ", ".join(f"{s} {v:.0f}" for s, v in b[f"{backend}_matmul_gflops_by_shape"].items()))
        print(f"  the machine's floor {1e3 * b['machine_floor_s']:.1f} ms: each product at the fastest framework's "
              "matmul, plus the same traffic (a framework above 100% of its own floor runs the products faster inside "
              "its step than alone: XLA fuses them and runs independent ones side by side)")
        if args.onednn and "tf" in args.backends:
            report["b_onednn"] = extra = onednn_subprocess(gflops_steps, args.threads)
            for row in (extra or {}).get("modes", []):
                print(f"GFLOP/s, tf {row['mode']} with TF_ENABLE_ONEDNN_OPTS=1: {row['gflops']:.1f}: "
                      f"{row['pct_of_floor']:.0f}% of that run's floor, {row['pct_of_peak']:.0f}% of its peak "
                      f"(step {1e3 * row['median_step_s']:.1f} ms)")

    if "d" in args.figures:
        report["d"] = d = levers_figure(k, rounds=3 if args.quick else 8, seconds_per_turn=1.0, backends=args.backends)
        base = d["rows"][0]["steps_per_s"] if d["rows"] else float("nan")
        print(f"levers of PyTorch's compiled step, {d['task']}, interleaved in {d['rounds']} rounds (TF and JAX in the same "
              f"rounds); load average {d['load']['load_avg_1m']:.2f}, other processes {d['load']['others_cores']:.2f} "
              "cores", flush=True)
        for row in d["rows"]:
            print(f"  {row['lever']:<45} K={row['k']:<4} {row['steps_per_s']:7.0f} steps/s (IQR "
                  f"{row['p25_steps_per_s']:.0f}-{row['p75_steps_per_s']:.0f}; x{row['steps_per_s'] / base:.2f} of the first "
                  f"row; first call {row['first_call_s']:.1f} s)", flush=True)

    if "c" in args.figures:
        report["c"] = []
        for backend, mode, optimizer in (QUICK_STEPS_CONFIGS if args.quick else STEPS_CONFIGS):
            if backend not in args.backends:
                continue
            gap = check_k_steps(backend, mode, 8, optimizer=optimizer)
            for steps_per_call in (1, k):
                row = steps_per_second(backend, mode, steps_per_call, calls if steps_per_call > 1 else calls * 20,
                                       optimizer=optimizer)
                row["k_steps_gap"] = gap
                report["c"].append(row)
                print(f"steps/s, {backend} {mode} {optimizer}, {OVERHEAD_TASK}, K={steps_per_call} steps per call: "
                      f"{row['steps_per_s']:.0f} ({row['steps_timed']} steps timed"
                      f"{f'; train_steps(8) vs 8 x train_step: {gap:.1g}' if steps_per_call > 1 else ''})"
                      + (f"; {timing.load_note(row['load'])}" if timing.load_note(row["load"]) else ""), flush=True)
        if "torch" in args.backends:
            report["torch_ops_per_step"] = ops = torch_ops_per_step()
            print(f"  torch eager dispatches {ops} top-level aten ops per {OVERHEAD_TASK} step")
        if "tf" in args.backends:
            report["xla_fusion"] = fused = xla_fusion()
            print(f"  TF XLA, {GFLOPS_TASK} step: {fused['fusions']} fusions; update ops outside a fusion: "
                  f"{', '.join(fused['unfused_update_ops']) or 'none'}")

    report["goals"] = goals(report, args.backends)
    for line in report["goals"]:
        print(line)
    report["load_avg_end"] = os.getloadavg()
    print(f"load average at start {report['load_avg'][0]:.2f}, at end {report['load_avg_end'][0]:.2f}")
    if args.out:
        checkpoint.atomic_write(args.out, lambda file: file.write(json.dumps(report, indent=1, default=float).encode()))
    return 0


def goals(report: dict, backends) -> list[str]:
    """The speed goals (GOAL_*) against this run's figures, best configuration of each framework; printed, never
    asserted."""
    lines = []
    for backend in backends:
        name = {"torch": "PyTorch", "tf": "TensorFlow", "jax": "JAX"}[backend]
        rows = [r for r in report.get("c", []) if r["backend"] == backend]
        if rows:
            best = max(rows, key=lambda r: r["steps_per_s"])
            lines.append(f"goal: {OVERHEAD_TASK} >= {GOAL_STEPS_PER_S:.0f} steps/s, {name} best {best['steps_per_s']:.0f} "
                         f"({best['mode']}, {best['optimizer']}, K={best['k']}): "
                         f"{'met' if best['steps_per_s'] >= GOAL_STEPS_PER_S else 'NOT met'}")
        rows = [r for r in report.get("b", {}).get("modes", []) if r["backend"] == backend]
        if rows and all("pct_of_floor" in r for r in rows):
            best = max(rows, key=lambda r: r["pct_of_floor"])
            lines.append(f"goal: {GFLOPS_TASK} batch {GFLOPS_BATCH} >= {GOAL_PCT_OF_FLOOR:.0f}% of the step's floor, "
                         f"{name} best {best['pct_of_floor']:.0f}% ({best['mode']}): "
                         f"{'met' if best['pct_of_floor'] >= GOAL_PCT_OF_FLOOR else 'NOT met'}")
        if rows:
            best = max(rows, key=lambda r: r["pct_of_peak"])
            lines.append(f"goal: {GFLOPS_TASK} batch {GFLOPS_BATCH} >= {GOAL_PCT_OF_PEAK:.0f}% of peak, {name} best "
                         f"{best['pct_of_peak']:.0f}% ({best['mode']}): "
                         f"{'met' if best['pct_of_peak'] >= GOAL_PCT_OF_PEAK else 'NOT met'}")
        for r in (r for r in report.get("a", []) if r["backend"] == backend):
            lines.append(f"goal: harness overhead <= {GOAL_OVERHEAD_PCT:.0f}%, {name} {r['mode']}: {r['overhead_pct']:+.1f}%: "
                         f"{'met' if r['overhead_pct'] <= GOAL_OVERHEAD_PCT else 'NOT met'}")
    rows = report.get("c", [])
    best = {b: max((r for r in rows if r["backend"] == b), key=lambda r: r["steps_per_s"], default=None)
            for b in ("torch", "tf")}
    if best["torch"] and best["tf"]:
        ratio = best["torch"]["steps_per_s"] / best["tf"]["steps_per_s"]
        lines.append(f"goal: {OVERHEAD_TASK}, PyTorch's best >= {GOAL_TORCH_OVER_TF:.2f}x TensorFlow's best in the same "
                     f"run: {ratio:.2f}x: {'met' if ratio >= GOAL_TORCH_OVER_TF else 'NOT met'}")
    return lines


if __name__ == "__main__":
    sys.exit(main())
