"""One cell of the grid, trained, timed, judged and stored: the loop that ``python -m benchmarks.run`` runs and
``python -m benchmarks.perf`` measures (its harness-overhead figure times ``CellLoop.advance`` itself).

A cell is (task, backend, mode, loss, seed). ``train_cell`` builds the trainer from the seed's initial weights,
continues a checkpoint under --resume, advances the loop to the planned step count (snapshots, the timed
trainer calls, the NaN/inf check, checkpoints), then scores the final samples and times the phases and sampling:
it returns the record (benchmarks/record.py) and the history as data, writing nothing but checkpoints.
``store_result`` writes the history and appends the record through benchmarks/store.py; ``run_cell`` is the two
in one process. benchmarks/executor.py runs ``train_cell`` here or on Ray workers and stores every result itself.

Timing method: benchmarks/timing.py. FLOP model: common/flops.py.
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import io
import math
import secrets
import signal
import time
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from benchmarks import store, timing
from benchmarks.record import Outcome, RunRecord, StepTimes, Throughput
from common import checkpoint
from common import tasks as task_registry
from common.backend import get_backend
from common.flops import train_step_flops
from common.init import initial_weights
from common.spec import GAN, SIGMOID_LOSSES
from common.stream import Stream
from common.twin import TWINS, Twin

# Collapse and divergence checks (flags in the record, never hidden).
SATURATED_D_FAKE_LOW = 0.01   # sigmoid losses: D(fake) below this ...
SATURATED_D_FAKE_HIGH = 0.99  # ... or above this ...
SATURATED_STEPS = 500         # ... for this many consecutive steps: flag "d_saturated"
MODE_COLLAPSE_MODES = 1       # mixture tasks: this many modes covered at the end: flag "mode_collapse"
# Divergence without a NaN: Adam and RMSprop move a weight by about lr (RMSprop at most ~10 lr) per update, so even
# lr 1e-2 over 10^5 steps stays below 10^4; a weight beyond WEIGHT_LIMIT means the run blew up (flag
# "weights_exploded"). Samples are stored as float16, whose largest value is 65504: samples that become inf there
# cannot be shown or compared, and no task's data come near that (flag "samples_not_finite"). Both end the run as
# "diverged", like a NaN/inf loss or weight (which needs no flag).
WEIGHT_LIMIT = 1e6
NONFINITE = "nonfinite"
DIVERGENCE_FLAGS = ("weights_exploded", "samples_not_finite")

SNAPSHOTS = 16                # evenly spaced snapshots of samples and of the weight sketch
SNAPSHOT_SAMPLES = 64
PHASE_STEPS = 20              # extra steps for trainer.time_phases, after the timed run (at most half the run's)
SAMPLING_CALLS = 10           # timed generate() calls for the sampling time


@dataclass
class Cell:
    task: task_registry.Task
    backend: str
    mode: str
    spec: GAN
    steps: int
    seed: int
    steps_per_call: int = 1  # K: trainer.train_steps(K) per call
    threads: int | None = None  # intra-op threads asked for (None: the framework's default)
    init: str = "seed"  # "seed+order1" to "seed+order3": the chaos floor's twins (common/twin.py), planned by plan.py

    @property
    def key(self) -> tuple:
        """What makes two cells different runs (store.cell_of reads the same from a record)."""
        return (self.task.name, self.backend, self.mode, self.spec.loss.name, self.seed,
                self.spec.d_optimizer.implementation, self.steps_per_call, self.threads, self.spec.dtype, self.init,
                self.spec.pack)

    @property
    def id(self) -> str:
        return store.cell_id(*self.key)

    @property
    def config(self) -> dict:
        spec = self.spec
        # "dtype" only when not float32, so that records written before dtypes existed still match (--resume)
        return {"steps": self.steps, "batch_size": spec.batch_size, "d_lr": spec.d_optimizer.lr,
                "g_lr": spec.g_optimizer.lr, "optimizer": spec.d_optimizer.implementation,
                "algorithm": spec.d_optimizer.name, "d_steps": spec.updates.d_steps,
                "steps_per_call": self.steps_per_call, "threads": self.threads, "pack": spec.pack,
                **({} if spec.dtype == "float32" else {"dtype": spec.dtype})}


@dataclass(frozen=True)
class RunOptions:
    """What the command line decides for every cell (plan.py builds it once from the flags)."""
    out: str
    suite: str = "custom"
    device: str = "auto"
    warmup: int | None = None  # None: timing.default_warmup(steps)
    checkpoint_every: int | None = None
    resume: bool = False
    executor: str = "local"  # where the cell runs: benchmarks/executor.py
    timing_mode: str = "exclusive"  # record.TIMING_MODES; only "exclusive" cells time the phases and sampling


# ----------------------------------------------------------------------------- interrupts


class Interrupted(BaseException):
    """SIGINT/SIGTERM arrived; ``exit_code`` is 130 or 143."""

    def __init__(self, exit_code: int):
        super().__init__(exit_code)
        self.exit_code = exit_code


_pending_signal: list[int] = []  # signals received; kept so an interruption can never be lost


def raise_interrupted(signum, frame):
    """The SIGINT/SIGTERM handler run.py installs."""
    _pending_signal.append(signum)
    raise Interrupted(128 + signum)


def stop_if_interrupted() -> None:
    """Re-raise a signal whose exception was swallowed (raised inside a __del__ or weakref callback, Python
    only prints it): called between steps and between cells, so Ctrl-C always stops the run."""
    if _pending_signal:
        raise Interrupted(128 + _pending_signal[0])


@contextlib.contextmanager
def interrupts_raising():
    """SIGINT/SIGTERM raise Interrupted inside the block (a command's main()); before and after it, the previous
    handlers and no signal pending, so that one command's interrupt never stops the next one of the process."""
    _pending_signal.clear()
    old = {sig: signal.signal(sig, raise_interrupted) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
        _pending_signal.clear()


# ----------------------------------------------------------------------------- the log of one run


class RunLog:
    """Per-step values and clocks of one run, plus the snapshots and weight sketches."""

    STEP_FIELDS = store.STEP_ARRAYS

    def __init__(self, spec: GAN, started: float | None = None, original_units=None):
        # wall clock of the whole run in this process: build to record
        self.started = time.perf_counter() if started is None else started
        self.steps = {key: [] for key in self.STEP_FIELDS}
        self.snapshot_steps, self.snapshots, self.sketch_steps, self.sketch = [], [], [], []
        total = spec.parameter_count
        self.sketch_index = np.sort(np.random.default_rng(store.SKETCH_SEED).choice(
            total, size=min(store.SKETCH_SIZE, total), replace=False))
        self.data_dim = spec.data_dim
        # a chaos-floor twin's Twin.restore (common/twin.py): its weights sketched in the original units' order
        self.original_units = original_units or (lambda weights: weights)

    def add(self, results: dict, step_time: float, data_time: float, timed: bool) -> None:
        n = len(np.atleast_1d(results["d_loss"]))
        for key in ("d_loss", "g_loss", "d_real", "d_fake"):
            self.steps[key] += [float(v) for v in np.atleast_1d(results[key])]
        self.steps["step_time"] += [step_time / n] * n
        self.steps["data_time"] += [data_time / n] * n
        self.steps["timed"] += [timed] * n

    def take_snapshot(self, trainer, step: int, noise: np.ndarray) -> str | None:
        """Samples and the weight sketch at ``step``; None if healthy, else why the run diverged (NONFINITE or one
        of DIVERGENCE_FLAGS)."""
        samples = as_stored(trainer.generate(noise))
        self.snapshot_steps.append(step)
        self.snapshots.append(samples)
        return self.take_sketch(trainer, step) or samples_problem(samples)

    def take_sketch(self, trainer, step: int) -> str | None:
        """The weight sketch at ``step``; None if every weight is finite and within WEIGHT_LIMIT, else the problem.
        A twin's weights are sketched in the original units' order (``original_units``), to be compared with its
        run's."""
        weights = self.original_units(trainer.get_weights())
        flat = np.concatenate([w.ravel() for net in ("generator", "discriminator") for w in weights[net]])
        self.sketch_steps.append(step)
        self.sketch.append(flat[self.sketch_index].astype(np.float32))
        if not np.isfinite(flat).all():
            return NONFINITE
        return "weights_exploded" if np.abs(flat).max() > WEIGHT_LIMIT else None

    def arrays(self) -> dict[str, np.ndarray]:
        out = {key: np.asarray(values, dtype=bool if key == "timed" else np.float64) for key, values in self.steps.items()}
        out.update(snapshot_steps=np.asarray(self.snapshot_steps, dtype=np.int64),
                   snapshots=np.asarray(self.snapshots, dtype=np.float16),
                   sketch_index=self.sketch_index, sketch_steps=np.asarray(self.sketch_steps, dtype=np.int64),
                   sketch=np.asarray(self.sketch, dtype=np.float32))
        return out

    def restore(self, arrays: dict[str, np.ndarray], steps_done: int) -> None:
        """Continue from a checkpoint's history; ValueError unless it is one of ``steps_done`` steps of this spec."""
        self.check(arrays, steps_done)
        for key in self.STEP_FIELDS:
            self.steps[key] = arrays[key].tolist()
        self.snapshot_steps, self.snapshots = arrays["snapshot_steps"].tolist(), list(arrays["snapshots"])
        self.sketch_steps, self.sketch = arrays["sketch_steps"].tolist(), list(arrays["sketch"])

    def check(self, arrays: dict[str, np.ndarray], steps_done: int) -> None:
        """ValueError (saying what is wrong) unless ``arrays`` is a history of ``steps_done`` steps of this spec."""
        missing = [key for key in (*self.STEP_FIELDS, "snapshot_steps", "snapshots", "sketch_index", "sketch",
                                   "sketch_steps") if key not in arrays]
        if missing:
            raise ValueError(f"lacks {', '.join(missing)}")
        for key in ("snapshot_steps", "sketch_steps"):
            steps = arrays[key]
            if steps.ndim != 1 or steps.dtype.kind != "i" or (steps < 0).any() or (steps > steps_done).any() \
                    or (np.diff(steps) <= 0).any():
                raise ValueError(f"has {key} {steps.tolist()} that are not increasing steps in 0..{steps_done}")
        expected = {**{key: (steps_done,) for key in self.STEP_FIELDS},
                    "snapshots": (len(arrays["snapshot_steps"]), SNAPSHOT_SAMPLES, self.data_dim),
                    "sketch_index": self.sketch_index.shape,
                    "sketch": (len(arrays["sketch_steps"]), len(self.sketch_index))}
        for key, shape in expected.items():
            if arrays[key].shape != shape:
                raise ValueError(f"has {key} of shape {arrays[key].shape}, expected {shape} for {steps_done} steps")
        if not np.array_equal(arrays["sketch_index"], self.sketch_index):
            raise ValueError("has a weight sketch of other coordinates")
        # The values of a run that has not diverged (a checkpoint is saved only while none of them says so):
        # per-step floats finite, clocks >= 0, snapshots finite, sketched weights finite and within WEIGHT_LIMIT.
        if arrays["timed"].dtype.kind != "b":
            raise ValueError(f"has timed of {arrays['timed'].dtype}, expected booleans")
        for key in ("d_loss", "g_loss", "d_real", "d_fake", "step_time", "data_time", "snapshots", "sketch"):
            values = arrays[key]
            if values.dtype.kind != "f":
                raise ValueError(f"has {key} of {values.dtype}, expected floats")
            bad = ~np.isfinite(values)
            if key in ("step_time", "data_time"):
                bad |= values < 0
            if key == "sketch":
                bad |= np.abs(values) > WEIGHT_LIMIT
            if bad.any():
                at = np.argwhere(bad)[0]
                raise ValueError(f"has {key} {values[tuple(at)]} at index {tuple(int(i) for i in at)}: not a value "
                                 "of a run that has not diverged")


def as_stored(samples: np.ndarray) -> np.ndarray:
    """Samples as histories store them: float16, where beyond 65504 is inf (samples_problem says so)."""
    with np.errstate(over="ignore", invalid="ignore"):
        return samples.astype(np.float16)


def samples_problem(samples: np.ndarray) -> str | None:
    """None if the samples, as stored (float16), are all finite; else "samples_not_finite"."""
    return None if np.isfinite(samples).all() else "samples_not_finite"


def next_inputs(stream: Stream, k: int, stacked: bool) -> dict:
    """The next ``k`` steps' inputs: as train_step kwargs, or stacked (leading K axis) for train_steps."""
    if not stacked:
        return stream.next().as_kwargs()
    steps = [stream.next().as_kwargs() for _ in range(k)]
    return {key: None if value is None else np.stack([s[key] for s in steps]) for key, value in steps[0].items()}


# ----------------------------------------------------------------------------- the loop


class CellLoop:
    """The training loop of one cell, one iteration per ``advance()``. ``out``: where the progress bar and log
    lines go (None: the terminal)."""

    def __init__(self, cell: Cell, trainer, stream: Stream, options: RunOptions, out=None, started=None,
                 original_units=None):
        self.cell, self.trainer, self.stream, self.options, self.out = cell, trainer, stream, options, out
        self.log = RunLog(cell.spec, started, original_units)
        self.view_noise = stream.fixed_noise(SNAPSHOT_SAMPLES)
        self.done = self.first_done = resume_from_checkpoint(self)
        planned = np.unique(np.linspace(0, cell.steps, SNAPSHOTS).round().astype(int)).tolist()
        self.snapshot_at = [s for s in planned if s >= self.done and s not in self.log.snapshot_steps]
        self.warmup = options.warmup if options.warmup is not None else timing.default_warmup(cell.steps)
        self.k = cell.steps_per_call
        self.status, self.diverged_at, self.problem = "finished", None, None
        self.bar = tqdm(total=cell.steps, initial=self.done, desc=cell.id, unit="step", dynamic_ncols=True,
                        leave=False, mininterval=0.5, file=out)

    def advance(self) -> bool:
        """The snapshots now due, then one trainer call of up to K steps (inputs drawn outside the step clock),
        its losses checked, and a checkpoint if one is due. False once the run is over (done or diverged)."""
        log, steps, done = self.log, self.cell.steps, self.done
        while self.snapshot_at and self.snapshot_at[0] <= done:
            problem = log.take_snapshot(self.trainer, done, self.view_noise)
            if problem and self.status == "finished":
                self.status, self.diverged_at, self.problem = "diverged", done, problem
            self.snapshot_at.pop(0)
        if done >= steps or self.status == "diverged":
            return False
        k = self.k
        n = min(k, steps - done)
        start = time.perf_counter()
        inputs = next_inputs(self.stream, n, stacked=k > 1)
        data_time, start = time.perf_counter() - start, time.perf_counter()
        results = self.trainer.train_step(**inputs) if k == 1 else self.trainer.train_steps(**inputs)
        step_time = time.perf_counter() - start
        stop_if_interrupted()
        log.add(results, step_time, data_time, timed=done - self.first_done >= self.warmup)
        self.done = done = done + n
        self.bar.update(n)
        self.status, self.diverged_at = check_losses(log, done, n, self.cell.task.log_every, steps, self.bar, self.out)
        every = self.options.checkpoint_every
        if every and done % every < n and done < steps and self.status == "finished":
            self.save_checkpoint(done)
        return True

    def save_checkpoint(self, done: int) -> None:
        """The checkpoint at step ``done``, if it holds what checkpoint_of accepts: a state with a non-finite or
        exploded value (a run diverging between two of its checks) is not saved; the previous checkpoint stays,
        and a resume from it replays the same steps to the same end."""
        state, history = self.trainer.state(), self.log.arrays()
        problem = values_problem(self.cell, state, history, done)
        if problem is not None:
            tqdm.write(f"[step {done}] no checkpoint saved: {problem}", file=self.out)
            return
        store.save_checkpoint(self.options.out, self.cell.id, self.trainer, history,
                              {"steps_done": done, "config": self.cell.config}, state=state)


def check_losses(log: RunLog, done: int, n: int, log_every: int, steps: int, bar, out=None) -> tuple[str, int | None]:
    """Progress postfix, the seeds' log lines, and the NaN/inf check of the last ``n`` steps' losses."""
    s = log.steps
    for i in range(n):
        step, at = done - n + i + 1, len(s["d_loss"]) - n + i
        if not (math.isfinite(s["d_loss"][at]) and math.isfinite(s["g_loss"][at])):
            tqdm.write(f"[step {step}/{steps}] diverged: D loss {s['d_loss'][at]}  G loss {s['g_loss'][at]}", file=out)
            return "diverged", step
        if step % log_every == 0:
            tqdm.write(f"[step {step}/{steps}] D loss {s['d_loss'][at]:.4f}  G loss {s['g_loss'][at]:.4f}  "
                       f"D(real) {s['d_real'][at]:.2f}  D(fake) {s['d_fake'][at]:.2f}", file=out)
    if done % 20 < n:
        recent = s["step_time"][-20:]
        bar.set_postfix(D=f"{s['d_loss'][-1]:.3f}", G=f"{s['g_loss'][-1]:.3f}",
                        steps_s=f"{len(recent) / max(sum(recent), 1e-12):.0f}", refresh=False)
    return "finished", None


def checkpoint_of(cell: Cell, out) -> tuple[int, dict, dict] | None:
    """The cell's checkpoint, checked before it is trusted: (steps done, trainer state, history so far), or None if
    it has none or one of another config (the run then starts over and replaces it). ValueError naming the file if
    it is damaged or does not fit: steps done outside 1..steps-1 (a checkpoint is saved only before the last step),
    a state other than this spec's (keys, shapes), a history of another length or shape. plan.py calls it for every
    cell to run under --resume before any runs, and resume_from_checkpoint again when the cell starts."""
    found = store.read_checkpoint(out, cell.id)
    if found is None or found[0]["config"] != cell.config:
        return None
    meta, state, history = found
    path, done = store.checkpoint_path(out, cell.id), meta["steps_done"]
    if not 0 < done < cell.steps:
        raise ValueError(f"checkpoint {path}: steps_done {done} is invalid for a run of {cell.steps} steps "
                         f"(allowed: 1..{cell.steps - 1}); delete it")
    state = checkpoint.check_fits(cell.spec, state, path)
    problem = values_problem(cell, state, history, done)
    if problem is not None:
        raise ValueError(f"checkpoint {path} is corrupt: {problem}; delete it")
    return done, state, history


def values_problem(cell: Cell, state: dict, history: dict, done: int) -> str | None:
    """None if a trainer state (of the cell's layout) and a history are what a run of the cell holds after ``done``
    steps without having diverged; else what is wrong. The one test of a checkpoint, applied when it is saved
    (CellLoop.save_checkpoint) and when it is read back (checkpoint_of), so the suite never writes one it would
    refuse."""
    problem = checkpoint.state_problem(cell.spec, state, done, WEIGHT_LIMIT)
    if problem is not None:
        return problem
    try:
        RunLog(cell.spec).check(history, done)
    except ValueError as error:
        return f"its history {error}"
    return None


def resume_from_checkpoint(loop: CellLoop) -> int:
    """With --resume and a checkpoint of the same config: restore the trainer and the history, and
    fast-forward the Stream by drawing (and discarding) the inputs of the steps already done."""
    cell, options = loop.cell, loop.options
    found = checkpoint_of(cell, options.out) if options.resume else None
    if found is None:
        return 0
    done, state, history = found
    loop.trainer.load_state(state)
    loop.log.restore(history, done)
    for _ in range(done):
        loop.stream.next()
    print(f"resume: {cell.id} continues from its checkpoint at step {done}")
    return done


def time_steps(cell: Cell, trainer, stream, warmup: int, steps_per_call: int = 1) -> tuple[float, np.ndarray]:
    """The step clock of the sweep and the perf script: this loop, quiet, for ``cell.steps`` steps of which the
    first ``max(1, warmup)`` are untimed, in calls of ``steps_per_call``. Returns the first call's seconds
    (trace/compile included) and the timed per-step seconds."""
    # No checkpoints: nothing is written.
    options = RunOptions(out="", device="cpu", warmup=max(1, warmup))
    loop = CellLoop(dataclasses.replace(cell, steps_per_call=steps_per_call), trainer, stream, options, out=io.StringIO())
    while loop.advance():
        pass
    arrays = loop.log.arrays()
    return float(arrays["step_time"][0]), arrays["step_time"][arrays["timed"]]


# ----------------------------------------------------------------------------- one cell, start to record


@dataclass
class CellResult:
    """A trained cell as plain data, nothing of it written yet: what a worker returns to the driver."""
    record: RunRecord  # history None until store_result wrote it
    arrays: dict[str, np.ndarray]  # the history (store.py's layout)


def train_cell(cell: Cell, task_data, options: RunOptions, machine: dict, env: dict, out=None) -> CellResult:
    """Train, judge and time one cell; returns its record and history without storing them. ``out``: where the
    cell's progress bar and log lines go (None: the terminal)."""
    module = get_backend(cell.backend)
    started = time.perf_counter()
    weights = initial_weights(cell.spec, cell.seed, cell.init)
    twin = Twin(cell.spec, cell.seed, cell.init) if cell.init in TWINS else None
    trainer = module.build(cell.spec, weights if twin is None else twin.weights(weights), device=options.device,
                           mode=cell.mode)
    # a fresh copy of the source: the same epoch order every cell
    stream = Stream(cell.spec, copy.copy(task_data.source), cell.seed, None if twin is None else twin.inputs)
    loop = CellLoop(cell, trainer, stream, options, out=out, started=started,
                    original_units=None if twin is None else twin.restore)
    tqdm.write(f"{cell.id}: {cell.steps} steps of batch {cell.spec.batch_size} on {module.device_name(options.device)}",
               file=out)
    before = timing.load_snapshot()
    while loop.advance():
        pass
    load = timing.load_since(before)  # what else ran on the machine while the steps were timed
    loop.bar.close()
    return finish(loop, task_data, machine, env, load)


def store_result(out_dir, cell_id: str, result: CellResult) -> RunRecord:
    """Write the cell's history, then append its record and remove its checkpoint; the caller is the folder's one
    writer. Returns the record, history set."""
    return store_results(out_dir, [(cell_id, result)])[0]


def store_results(out_dir, results: list[tuple[str, CellResult]]) -> list[RunRecord]:
    """store_result for several cells (cell id, result), their records appended in one rewrite of runs.jsonl."""
    records = [result.record for _, result in results]
    for record, (_, result) in zip(records, results):
        record.history = store.write_history(out_dir, record.run_id, result.arrays)
    with checkpoint.signals_deferred():  # recorded and their checkpoints gone, or neither: no stale checkpoint
        store.append_records(out_dir, [record.to_json() for record in records])
        for cell_id, _ in results:
            store.remove_checkpoint(out_dir, cell_id)
    return records


def run_cell(cell: Cell, task_data, options: RunOptions, machine: dict, env: dict) -> RunRecord:
    """Train one cell, store its history and record; returns the record."""
    return store_result(options.out, cell.id, train_cell(cell, task_data, options, machine, env))


def flags_of(cell: Cell, log: RunLog, metrics: dict) -> list[str]:
    flags = []
    if cell.spec.loss.name in SIGMOID_LOSSES:
        d_fake = np.asarray(log.steps["d_fake"])
        saturated = (d_fake < SATURATED_D_FAKE_LOW) | (d_fake > SATURATED_D_FAKE_HIGH)
        run = longest = 0
        for value in saturated:
            run = run + 1 if value else 0
            longest = max(longest, run)
        if longest >= SATURATED_STEPS:
            flags.append("d_saturated")
    if metrics.get("modes_covered") == MODE_COLLAPSE_MODES:
        flags.append("mode_collapse")
    return flags


def finish(loop: CellLoop, task_data, machine: dict, env: dict, load: dict | None = None) -> CellResult:
    """Final sketch, samples and metrics, phase and sampling timings: the record and the history. ``load``: the
    machine's load while the steps ran (timing.load_since)."""
    cell, trainer, log, options = loop.cell, loop.trainer, loop.log, loop.options
    spec, k, first_done = cell.spec, loop.k, loop.first_done
    status, diverged_at, problem = loop.status, loop.diverged_at, loop.problem
    steps_done = len(log.steps["d_loss"])
    if not log.sketch_steps or log.sketch_steps[-1] != steps_done:
        found = log.take_sketch(trainer, steps_done)
        if found and status == "finished":
            status, diverged_at, problem = "diverged", steps_done, found
    samples = trainer.generate(loop.stream.fixed_noise(cell.task.eval_samples))
    found = samples_problem(as_stored(samples))
    if found and status == "finished":
        status, diverged_at, problem = "diverged", steps_done, found
    metrics = {}
    if status == "finished":
        metrics = cell.task.score(samples, task_data, log.steps)
    timed = status == "finished" and options.timing_mode == "exclusive"  # times of shared cores compare nothing
    # Phase times of a graph mode need the step compiled once more, split at the phases (torch.compile: as long as
    # the step's own compile, 2 min of the quick suite; XLA 3-5 s a cell): the quick suite leaves them out.
    phases = options.suite != "quick" or cell.mode == "eager"
    extra = extra_timings(trainer, loop.stream, spec, cell.steps, phases) if timed else {}
    arrays = log.arrays()
    arrays["samples"] = as_stored(samples[:store.STORED_SAMPLES])
    stats = timing.summarize_steps(arrays["step_time"], arrays["timed"])
    first_call = arrays["step_time"][first_done] * min(k, steps_done - first_done) if steps_done > first_done else math.nan
    flops = train_step_flops(spec)
    gflops = flops["total"] / stats["median_step_s"] / 1e9
    # The step's own floor, timed after the run in this process (its matmuls alone, the copy bandwidth)
    floor = timing.step_floor(spec, get_backend(cell.backend), options.device, stats["median_step_s"]) if timed else None
    run_id = f"{cell.id}-{time.strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(2)}"
    record = RunRecord(
        schema=store.SCHEMA_VERSION, producer=store.PRODUCER, suite=options.suite, run_id=run_id,
        task=cell.task.name, backend=cell.backend, mode=cell.mode, compiled_as=trainer.compiled_as,
        loss=spec.loss.name, seed=cell.seed,
        init=cell.init, config=cell.config,
        outcome=Outcome(status=status, diverged_at_step=diverged_at,
                        flags=flags_of(cell, log, metrics) + ([problem] if problem in DIVERGENCE_FLAGS else []),
                        steps=cell.steps, steps_done=steps_done, resumed_from_step=first_done, steps_per_call=k,
                        warmup_steps=int((~arrays["timed"][first_done:]).sum())),
        timing=StepTimes(**stats, steps_per_s=1.0 / stats["median_step_s"],
                         samples_per_s=spec.examples_per_batch / stats["median_step_s"], first_call_s=float(first_call),
                         compile_s=timing.compile_seconds(first_call, stats["median_step_s"] * k),
                         median_data_s=float(np.median(arrays["data_time"])) if steps_done else math.nan),
        throughput=Throughput(flops_per_step=flops["total"], flops_approximate=flops["approximate"],
                              examples_per_step=flops["examples"], gflops_per_s=gflops,
                              pct_of_peak=100.0 * gflops / machine["peak_gflops"], **machine),
        extra_timings=extra, metrics=metrics, eval_samples=cell.task.eval_samples,
        data={"source": task_data.info.source, "n_examples": task_data.info.n_examples,
              "notice": task_data.info.notice},
        spec=spec.to_dict(), environment=env, wall_s=time.perf_counter() - log.started,
        executor=options.executor, timing_mode=options.timing_mode, load=load, floor=floor,
    )
    return CellResult(record, arrays)


def extra_timings(trainer, stream: Stream, spec: GAN, steps: int = 2 * PHASE_STEPS, phases: bool = True) -> dict:
    """Phase times (unless ``phases`` is False) and sampling time, on extra calls after the run: PHASE_STEPS
    phase-timed steps, or half the run's steps if fewer (a short run of a convolutional GAN would otherwise spend
    more time on them than training)."""
    extra = {}
    if phases:
        timed = [trainer.time_phases(**stream.next().as_kwargs()) for _ in range(min(PHASE_STEPS, max(1, steps // 2)))]
        extra = {f"{name}_s": float(np.median([t[name] for t in timed])) for name in timed[0]}
    noise = stream.fixed_noise(spec.batch_size)
    trainer.generate(noise)  # first call may trace
    times = []
    for _ in range(SAMPLING_CALLS):
        start = time.perf_counter()
        trainer.generate(noise)
        times.append(time.perf_counter() - start)
    extra["sample_s"] = float(np.median(times))
    return extra
