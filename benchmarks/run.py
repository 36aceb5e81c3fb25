"""`python -m benchmarks.run`: train the same GANs in PyTorch and TensorFlow, time them, store the results.

A *cell* is (task, backend, mode, loss, seed). All cells are planned and every input is validated before
anything is written; then the cells run one by one, each appending one record to <out>/runs.jsonl
(benchmarks/store.py documents the files). Exit codes: 0 every cell ran (a diverged run is a result, not
a failure), 2 bad input, 130/143 interrupted by SIGINT/SIGTERM (finished runs are kept; --resume continues).

Timing method: benchmarks/timing.py. FLOP model: common/flops.py.
"""
from __future__ import annotations

import argparse
import copy
import math
import secrets
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from benchmarks import store, timing
from common import tasks as task_registry
from common.backend import BACKENDS, DEVICES, MODES, DeviceUnavailableError, ModeUnsupportedError, get_backend
from common.data import DataError
from common.flops import train_step_flops
from common.init import init_weights
from common.metrics import evaluate, parabola_gauges
from common.spec import GAN, LOSSES, SIGMOID_LOSSES
from common.stream import Stream

# The quick suite (the default): every toy task and MNIST, both backends, the modes that say something.
# Steps per task; each (backend, mode) runs that fraction of them. TF eager gets a short run only: on these
# small models it is 15-40x slower per step than tf.function (measured below) and its timing needs few steps.
# Measured on this 2-core CPU (2026-11-23, other jobs sharing it) with `--backend both --steps 100`: 152 s for
# all 25 cells, of which ~100 s are fixed costs (imports, torch.compile 4-14 s per new graph, tf.function
# 1-3 s, XLA 2-3.5 s, scoring) and per step: parabola 7.9 ms for the four fast modes together + 58 ms TF
# eager; gmm2 13.3 + 88; ring8 14.6 + 66; grid25 11.7 + 57; mnist 79 + 135 ms. Extrapolated to this plan:
# ~100 s fixed + ~210 s of steps = ~5 min (a loaded machine doubles it; still under 10).
QUICK_STEPS = {"parabola": 2000, "gmm2": 2000, "ring8": 2000, "grid25": 2000, "mnist": 1000}
QUICK_MODES = {("torch", "eager"): 1.0, ("torch", "compiled"): 1.0,
               ("tf", "eager"): 0.05, ("tf", "compiled"): 1.0, ("tf", "xla"): 1.0}

# Collapse and divergence checks (flags in the record, never hidden).
SATURATED_D_FAKE_LOW = 0.01   # sigmoid losses: D(fake) below this ...
SATURATED_D_FAKE_HIGH = 0.99  # ... or above this ...
SATURATED_STEPS = 500         # ... for this many consecutive steps: flag "d_saturated"
MODE_COLLAPSE_MODES = 1       # mixture tasks: this many modes covered at the end: flag "mode_collapse"

SNAPSHOTS = 16                # evenly spaced snapshots of samples and of the weight sketch
SNAPSHOT_SAMPLES = 64
EVAL_SAMPLES = {"mnist": 1000, "mnist-small": 1000, "faces": 512}  # final samples scored; others (toys):
EVAL_SAMPLES_TOY = 2000
PHASE_STEPS = 20              # extra steps for trainer.time_phases, after the timed run
SAMPLING_CALLS = 10           # timed generate() calls for the sampling time

EPILOG = """examples:
  python -m benchmarks.run --backend both                 # the quick suite (< 10 min on 2 CPU cores)
  python -m benchmarks.run --backend torch --task parabola --steps 500 --mode eager
  python -m benchmarks.run --backend tf --task mnist --loss wgan-gp --seeds 3 --out results/wgan --resume
"""


class Interrupted(BaseException):
    """SIGINT/SIGTERM arrived; ``exit_code`` is 130 or 143."""

    def __init__(self, exit_code: int):
        super().__init__(exit_code)
        self.exit_code = exit_code


@dataclass
class Cell:
    task: task_registry.Task
    backend: str
    mode: str
    spec: GAN
    steps: int
    seed: int

    @property
    def key(self) -> tuple:
        return (self.task.name, self.backend, self.mode, self.spec.loss.name, self.seed)

    @property
    def id(self) -> str:
        return store.cell_id(*self.key)

    @property
    def config(self) -> dict:
        spec = self.spec
        return {"steps": self.steps, "batch_size": spec.batch_size, "d_lr": spec.d_optimizer.lr,
                "g_lr": spec.g_optimizer.lr, "optimizer": spec.d_optimizer.implementation}


def positive(kind):
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number")
        if not (math.isfinite(value) and value > 0):
            raise argparse.ArgumentTypeError(f"{text!r} is invalid; allowed: a number > 0")
        return value
    return parse


def non_negative_int(text):
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is invalid; allowed: an integer >= 0")
    return int(text)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.run", epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Train the same MLP GANs in PyTorch and TensorFlow from identical weights and data, time "
                    "every step, score the samples, and append one record per run to OUT/runs.jsonl.")
    parser.add_argument("--backend", default="both", choices=[*BACKENDS, "both"], help="framework(s) to run (default both)")
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--task", nargs="+", metavar="T", help="task(s) to run (see --list); default: the quick suite")
    what.add_argument("--suite", choices=("quick", "full"), default="quick",
                      help="quick: short runs of every toy task and MNIST; full: every task at its seed's length")
    parser.add_argument("--loss", choices=LOSSES, help="override the task's loss (applies that loss's defaults)")
    parser.add_argument("--steps", type=positive(int), help="training steps per run (default: the task's or the suite's)")
    parser.add_argument("--batch-size", type=positive(int), help="batch size (default: the task's)")
    parser.add_argument("--lr", type=positive(float), help="learning rate of both networks (default: the task's)")
    parser.add_argument("--seed", type=non_negative_int, default=0, help="first seed (default 0)")
    parser.add_argument("--seeds", type=positive(int), default=1, help="number of seeds: seed, seed+1, ... (default 1)")
    parser.add_argument("--mode", choices=[*MODES, "all"],
                        help="eager, compiled (torch.compile / tf.function), xla (TF only) or all; "
                             "default: the quick suite's plan, else all")
    parser.add_argument("--optimizer", choices=("spec", "native"), help="spec: identical formulas in both "
                        "backends (default); native: torch.optim / keras.optimizers as users run them")
    parser.add_argument("--device", choices=DEVICES, default="auto", help="auto (CUDA if present), cpu or cuda")
    parser.add_argument("--threads", type=positive(int), help="intra-op threads for both backends (default: framework's)")
    parser.add_argument("--steps-per-call", type=positive(int), default=1, metavar="K",
                        help="steps per trainer call (train_steps); per-step time = call time / K")
    parser.add_argument("--data-dir", help="folder with the task's data (MNIST files, a face folder)")
    parser.add_argument("--out", default="results", help="output folder (default results/)")
    parser.add_argument("--resume", action="store_true", help="skip cells already in OUT/runs.jsonl with the same "
                        "config; continue unfinished ones from their checkpoint")
    parser.add_argument("--checkpoint-every", type=positive(int), metavar="N", help="save a checkpoint every N steps")
    parser.add_argument("--warmup", type=non_negative_int, help="untimed warm-up steps (default max(5, 2%% of steps))")
    parser.add_argument("--list", action="store_true", help="print the tasks and exit")
    parser.add_argument("--sweep", choices=("batch", "width"), help="instead of training runs: time step cost against "
                        "batch size or layer width (task mnist-small unless --task names one) into OUT/sweep.csv")
    parser.add_argument("--no-report", action="store_true", help="do not build the report at the end")
    return parser.parse_args(argv)


# ----------------------------------------------------------------------------- planning and validation


def plan(args, backends: dict) -> tuple[list[Cell], dict, list[str], str]:
    """Every cell to run, the data per task, the reasons cells were skipped, and the suite name.
    Raises ValueError/DataError/DeviceUnavailableError on any bad input; writes nothing."""
    if args.task:
        suite, names = "custom", [task_registry.get_task(name).name for name in args.task]
    elif args.suite == "full":
        suite, names = "full", list(task_registry.TASKS)
    else:
        suite, names = "quick", list(QUICK_STEPS)
    if args.data_dir is not None and not Path(args.data_dir).expanduser().exists():
        raise DataError(f"--data-dir {args.data_dir} does not exist; allowed: an existing folder (or mnist.npz)")
    for name, module in backends.items():
        resolved = module.device_name(args.device)
        if args.device == "cuda" and not resolved.startswith("cuda"):
            raise DeviceUnavailableError(f"--device cuda: {name} found no GPU (it resolves to {resolved!r}); "
                                         "allowed here: auto, cpu")
    cells, data, skipped = [], {}, []
    for name in names:
        task = task_registry.get_task(name)
        data[name] = task.load(data_dir=args.data_dir)
        for (backend, mode), fraction in mode_plan(args, suite, backends, skipped):
            steps = args.steps or (max(1, round(QUICK_STEPS[name] * fraction)) if suite == "quick" else None)
            spec, steps = task_registry.configure(
                task, data[name].n_train, loss=args.loss, steps=steps, batch_size=args.batch_size, lr=args.lr,
                optimizer_impl=args.optimizer)
            if data[name].n_train is not None and spec.batch_size > data[name].n_train:
                raise DataError(f"batch size {spec.batch_size} is larger than the {name} data set "
                                f"({data[name].n_train} examples); allowed: 1..{data[name].n_train}")
            cells += [Cell(task, backend, mode, spec, steps, args.seed + k) for k in range(args.seeds)]
    return cells, data, skipped, suite


def mode_plan(args, suite: str, backends: dict, skipped: list[str]) -> list[tuple[tuple[str, str], float]]:
    """(backend, mode) pairs with their share of the steps; unsupported pairs skipped or refused."""
    pairs = []
    for name, module in backends.items():
        if args.mode is None and suite == "quick":
            modes = [m for (b, m) in QUICK_MODES if b == name]
        else:
            modes = list(MODES) if args.mode in (None, "all") else [args.mode]
        for mode in modes:
            if mode in module.MODES:
                pairs.append(((name, mode), QUICK_MODES.get((name, mode), 1.0) if args.mode is None else 1.0))
            elif args.mode in (None, "all"):
                reason = f"skipped {name}+{mode}: {name} supports {', '.join(module.MODES)}"
                if reason not in skipped:
                    skipped.append(reason)
            else:
                raise ValueError(f"mode {mode!r} is invalid for backend {name!r}; allowed: {', '.join(module.MODES)}")
    return pairs


def cells_to_skip(args, cells: list[Cell]) -> set[tuple]:
    """Cells already recorded in OUT/runs.jsonl with the same config (only under --resume)."""
    records = store.read_records(args.out)  # read always: a foreign file is refused before anything runs
    if not args.resume:
        return set()
    done = {store.cell_of(r): r["config"] for r in records}
    skip = set()
    for cell in cells:
        if cell.key in done and done[cell.key] == cell.config:
            skip.add(cell.key)
        elif cell.key in done:
            print(f"resume: {cell.id} was recorded with {done[cell.key]}, now {cell.config}: running it again")
    return skip


# ----------------------------------------------------------------------------- one run


class RunLog:
    """Per-step values and clocks of one run, plus the snapshots and weight sketches."""

    STEP_FIELDS = ("d_loss", "g_loss", "d_real", "d_fake", "step_time", "data_time", "timed")

    def __init__(self, spec: GAN):
        self.started = time.perf_counter()  # wall clock of the whole run in this process: build to record
        self.steps = {key: [] for key in self.STEP_FIELDS}
        self.snapshot_steps, self.snapshots, self.sketch_steps, self.sketch = [], [], [], []
        total = sum(i * o + o for mlp in (spec.generator, spec.discriminator) for i, o in mlp.layer_shapes)
        self.sketch_index = np.sort(np.random.default_rng(store.SKETCH_SEED).choice(
            total, size=min(store.SKETCH_SIZE, total), replace=False))

    def add(self, results: dict, step_time: float, data_time: float, timed: bool) -> None:
        n = len(np.atleast_1d(results["d_loss"]))
        for key in ("d_loss", "g_loss", "d_real", "d_fake"):
            self.steps[key] += [float(v) for v in np.atleast_1d(results[key])]
        self.steps["step_time"] += [step_time / n] * n
        self.steps["data_time"] += [data_time / n] * n
        self.steps["timed"] += [timed] * n

    def take_snapshot(self, trainer, step: int, noise: np.ndarray) -> bool:
        """Samples and the weight sketch at ``step``; False if a weight is NaN/inf."""
        self.snapshot_steps.append(step)
        self.snapshots.append(trainer.generate(noise).astype(np.float16))
        return self.take_sketch(trainer, step)

    def take_sketch(self, trainer, step: int) -> bool:
        weights = trainer.get_weights()
        flat = np.concatenate([w.ravel() for net in ("generator", "discriminator") for w in weights[net]])
        self.sketch_steps.append(step)
        self.sketch.append(flat[self.sketch_index].astype(np.float32))
        return bool(np.isfinite(flat).all())

    def arrays(self) -> dict[str, np.ndarray]:
        out = {key: np.asarray(values, dtype=bool if key == "timed" else np.float64) for key, values in self.steps.items()}
        out.update(snapshot_steps=np.asarray(self.snapshot_steps, dtype=np.int64),
                   snapshots=np.asarray(self.snapshots, dtype=np.float16),
                   sketch_index=self.sketch_index, sketch_steps=np.asarray(self.sketch_steps, dtype=np.int64),
                   sketch=np.asarray(self.sketch, dtype=np.float32))
        return out

    def restore(self, arrays: dict[str, np.ndarray]) -> None:
        for key in self.STEP_FIELDS:
            self.steps[key] = arrays[key].tolist()
        self.snapshot_steps, self.snapshots = arrays["snapshot_steps"].tolist(), list(arrays["snapshots"])
        self.sketch_steps, self.sketch = arrays["sketch_steps"].tolist(), list(arrays["sketch"])


def next_inputs(stream: Stream, k: int, stacked: bool) -> dict:
    """The next ``k`` steps' inputs: as train_step kwargs, or stacked (leading K axis) for train_steps."""
    if not stacked:
        return stream.next().as_kwargs()
    steps = [stream.next() for _ in range(k)]
    gp = None if steps[0].gp_eps is None else np.stack([s.gp_eps for s in steps])
    return {"real": np.stack([s.real for s in steps]), "noise": np.stack([s.noise for s in steps]), "gp_eps": gp}


def run_cell(cell: Cell, task_data, args, suite: str, machine: dict, env: dict) -> dict:
    """Train one cell, store its history and record; returns the record."""
    spec, steps, module = cell.spec, cell.steps, get_backend(cell.backend)
    log = RunLog(spec)
    trainer = module.build(spec, init_weights(spec, cell.seed), device=args.device, mode=cell.mode)
    stream = Stream(spec, copy.copy(task_data.source), cell.seed)  # a fresh copy: same epoch order every cell
    view_noise = stream.fixed_noise(SNAPSHOT_SAMPLES)
    done = resume_from_checkpoint(cell, trainer, stream, log, args)
    planned = np.unique(np.linspace(0, steps, SNAPSHOTS).round().astype(int)).tolist()
    snapshot_at = [s for s in planned if s >= done and s not in log.snapshot_steps]
    warmup = args.warmup if args.warmup is not None else timing.default_warmup(steps)
    first_done, k, status, diverged_at = done, args.steps_per_call, "finished", None
    tqdm.write(f"{cell.id}: {steps} steps of batch {spec.batch_size} on {module.device_name(args.device)}")
    bar = tqdm(total=steps, initial=done, desc=cell.id, unit="step", dynamic_ncols=True, leave=False, mininterval=0.5)
    while True:
        while snapshot_at and snapshot_at[0] <= done:
            if not log.take_snapshot(trainer, done, view_noise) and status == "finished":
                status, diverged_at = "diverged", done
            snapshot_at.pop(0)
        if done >= steps or status == "diverged":
            break
        n = min(k, steps - done)
        start = time.perf_counter()
        inputs = next_inputs(stream, n, stacked=k > 1)
        data_time, start = time.perf_counter() - start, time.perf_counter()
        results = trainer.train_step(**inputs) if k == 1 else trainer.train_steps(**inputs)
        step_time = time.perf_counter() - start
        stop_if_interrupted()
        log.add(results, step_time, data_time, timed=done - first_done >= warmup)
        done += n
        bar.update(n)
        status, diverged_at = check_losses(log, done, n, cell.task.log_every, steps, bar)
        if args.checkpoint_every and done % args.checkpoint_every < n and done < steps and status == "finished":
            store.save_checkpoint(args.out, cell.id, trainer, log.arrays(), {"steps_done": done, "config": cell.config})
    bar.close()
    return finish_run(cell, trainer, stream, log, task_data, args, suite, machine, env, status, diverged_at, first_done, k)


def check_losses(log: RunLog, done: int, n: int, log_every: int, steps: int, bar) -> tuple[str, int | None]:
    """Progress postfix, the seeds' log lines, and the NaN/inf check of the last ``n`` steps' losses."""
    s = log.steps
    for i in range(n):
        step, at = done - n + i + 1, len(s["d_loss"]) - n + i
        if not (math.isfinite(s["d_loss"][at]) and math.isfinite(s["g_loss"][at])):
            tqdm.write(f"[step {step}/{steps}] diverged: D loss {s['d_loss'][at]}  G loss {s['g_loss'][at]}")
            return "diverged", step
        if step % log_every == 0:
            tqdm.write(f"[step {step}/{steps}] D loss {s['d_loss'][at]:.4f}  G loss {s['g_loss'][at]:.4f}  "
                       f"D(real) {s['d_real'][at]:.2f}  D(fake) {s['d_fake'][at]:.2f}")
    if done % 20 < n:
        recent = s["step_time"][-20:]
        bar.set_postfix(D=f"{s['d_loss'][-1]:.3f}", G=f"{s['g_loss'][-1]:.3f}",
                        steps_s=f"{len(recent) / max(sum(recent), 1e-12):.0f}", refresh=False)
    return "finished", None


def resume_from_checkpoint(cell: Cell, trainer, stream: Stream, log: RunLog, args) -> int:
    """With --resume and a checkpoint of the same config: restore the trainer and the history, and
    fast-forward the Stream by drawing (and discarding) the inputs of the steps already done."""
    if not args.resume:
        return 0
    meta = store.peek_checkpoint_meta(args.out, cell.id)
    if meta is None or meta["config"] != cell.config:
        return 0
    meta, history = store.load_checkpoint(args.out, cell.id, trainer)
    log.restore(history)
    for _ in range(meta["steps_done"]):
        stream.next()
    print(f"resume: {cell.id} continues from its checkpoint at step {meta['steps_done']}")
    return meta["steps_done"]


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


def finish_run(cell, trainer, stream, log, task_data, args, suite, machine, env, status, diverged_at, first_done, k):
    """Final sketch, samples and metrics, optional phase/sampling timings; store history, then record."""
    spec = cell.spec
    steps_done = len(log.steps["d_loss"])
    if (not log.sketch_steps or log.sketch_steps[-1] != steps_done) and not log.take_sketch(trainer, steps_done) \
            and status == "finished":
        status, diverged_at = "diverged", steps_done
    n_eval = EVAL_SAMPLES.get(cell.task.name, EVAL_SAMPLES_TOY)
    samples = trainer.generate(stream.fixed_noise(n_eval))
    metrics = {}
    if status == "finished" and np.isfinite(samples).all():
        metrics = score(cell.task.name, samples, task_data, log)
    extra = {}
    if status == "finished":
        extra = extra_timings(trainer, stream, spec)
    arrays = log.arrays()
    arrays["samples"] = samples[:store.STORED_SAMPLES].astype(np.float16)
    stats = timing.summarize_steps(arrays["step_time"], arrays["timed"])
    first_call = arrays["step_time"][first_done] * min(k, steps_done - first_done) if steps_done > first_done else math.nan
    flops = train_step_flops(spec)
    gflops = flops["total"] / stats["median_step_s"] / 1e9
    run_id = f"{cell.id}-{time.strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(2)}"
    record = {
        "schema": store.SCHEMA_VERSION, "producer": store.PRODUCER, "suite": suite, "run_id": run_id,
        "task": cell.task.name, "backend": cell.backend, "mode": cell.mode, "loss": spec.loss.name, "seed": cell.seed,
        "config": cell.config, "status": status, "diverged_at_step": diverged_at, "flags": flags_of(cell, log, metrics),
        "steps": cell.steps, "steps_done": steps_done, "resumed_from_step": first_done, "steps_per_call": k,
        "warmup_steps": int((~arrays["timed"][first_done:]).sum()),
        **stats, "steps_per_s": 1.0 / stats["median_step_s"], "samples_per_s": spec.batch_size / stats["median_step_s"],
        "first_call_s": float(first_call), "compile_s": timing.compile_seconds(first_call, stats["median_step_s"] * k),
        "median_data_s": float(np.median(arrays["data_time"])) if steps_done else math.nan,
        "flops_per_step": flops["total"], "flops_approximate": flops["approximate"], "examples_per_step": flops["examples"],
        "gflops_per_s": gflops, "pct_of_peak": 100.0 * gflops / machine["peak_gflops"], **machine, **extra,
        "metrics": metrics, "eval_samples": n_eval,
        "data": {"source": task_data.info.source, "n_examples": task_data.info.n_examples, "notice": task_data.info.notice},
        "spec": spec.to_dict(), "environment": env, "wall_s": time.perf_counter() - log.started,
    }
    record["history"] = store.write_history(args.out, run_id, arrays)
    store.append_record(args.out, record)
    store.remove_checkpoint(args.out, cell.id)
    return record


def score(task_name: str, samples: np.ndarray, task_data, log: RunLog) -> dict[str, float]:
    """common.metrics on the final samples; mixtures pass their true modes, parabola adds seed 000's gauges."""
    source, context = task_data.source, {}
    if hasattr(source, "means"):
        context["mixture"] = (source.means, source.stds, source.weights)
    metrics = evaluate(task_name, samples, task_data.reference, **context)
    if task_name == "parabola":
        metrics.update(parabola_gauges(log.steps))
    return {name: float(value) for name, value in metrics.items()}


def extra_timings(trainer, stream: Stream, spec: GAN) -> dict:
    """Phase times (if the trainer offers time_phases) and sampling time, on extra calls after the run."""
    extra = {}
    if hasattr(trainer, "time_phases"):
        phases = [trainer.time_phases(**stream.next().as_kwargs()) for _ in range(PHASE_STEPS)]
        extra.update({f"{name}_s": float(np.median([p[name] for p in phases])) for name in phases[0]})
    noise = stream.fixed_noise(spec.batch_size)
    trainer.generate(noise)  # first call may trace
    times = []
    for _ in range(SAMPLING_CALLS):
        start = time.perf_counter()
        trainer.generate(noise)
        times.append(time.perf_counter() - start)
    extra["sample_s"] = float(np.median(times))
    return extra


# ----------------------------------------------------------------------------- the command


def print_summary(records: list[dict], out: str) -> None:
    import pandas as pd

    rows = [{"task": r["task"], "backend": r["backend"], "mode": r["mode"], "loss": r["loss"], "seed": r["seed"],
             "status": r["status"], "steps": r["steps_done"], "steps/s": round(r["steps_per_s"], 1),
             "IQR %": round(100 * (r["p75_step_s"] - r["p25_step_s"]) / r["median_step_s"], 1),
             "compile s": round(r["compile_s"], 2), "GFLOP/s": round(r["gflops_per_s"], 2),
             "% peak": round(r["pct_of_peak"], 1), "flags": ",".join(r["flags"])} for r in records]
    if rows:
        print(pd.DataFrame(rows).to_string(index=False))
    print(f"results: {Path(out) / store.RUNS_FILE} and {Path(out) / store.CSV_FILE}")


def build_report(out: str) -> None:
    import importlib.util

    if importlib.util.find_spec("benchmarks.report") is None:
        return
    from benchmarks import report

    print(f"report: {report.build_report(out)}")


_pending_signal: list[int] = []  # signals received; kept so an interruption can never be lost


def raise_interrupted(signum, frame):
    _pending_signal.append(signum)
    raise Interrupted(128 + signum)


def stop_if_interrupted() -> None:
    """Re-raise a signal whose exception was swallowed (raised inside a __del__ or weakref callback, Python
    only prints it): called between steps and between cells, so Ctrl-C always stops the run."""
    if _pending_signal:
        raise Interrupted(128 + _pending_signal[0])


def main(argv=None) -> int:
    args = parse_args(argv)
    args.command = sys.argv[1:] if argv is None else list(argv)
    if args.list:
        import pandas as pd

        print(pd.DataFrame(task_registry.describe_tasks()).to_string(index=False))
        return 0
    if args.sweep:
        return run_sweep(args)
    _pending_signal.clear()  # main() may be called again in one process (tests)
    old_handlers = {sig: signal.signal(sig, raise_interrupted) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        return run_all(args)
    except (Interrupted, KeyboardInterrupt) as e:
        print(f"\ninterrupted: finished runs are kept in {Path(args.out) / store.RUNS_FILE}; the run in progress was "
              "not recorded. Continue with the same command plus --resume.", file=sys.stderr)
        return e.exit_code if isinstance(e, Interrupted) else 130
    finally:
        for sig, handler in old_handlers.items():
            signal.signal(sig, handler)


def run_sweep(args) -> int:
    """--sweep: the scaling sweep of benchmarks/sweep.py, driven by this command's flags."""
    from benchmarks import sweep

    backends = ("torch", "tf") if args.backend == "both" else (args.backend,)
    modes = None if args.mode in (None, "all") else [args.mode]
    return sweep.sweep_and_print(args.sweep, backends, modes, args.threads, args.out,
                                 task=args.task[0] if args.task else "mnist-small")


def run_all(args) -> int:
    try:  # validation: nothing is written before every input is known good
        for name in args.task or []:  # a typo is refused before the frameworks take seconds to import
            task_registry.get_task(name)
        names = list(BACKENDS) if args.backend == "both" else [args.backend]
        backends = {name: get_backend(name) for name in names}
        configured = {name: module.configure(threads=args.threads, deterministic=True) for name, module in backends.items()}
        cells, data, skipped, suite = plan(args, backends)
        store.check_out_dir(args.out)
        skip = cells_to_skip(args, cells)
    except (ValueError, DeviceUnavailableError) as e:  # DataError is a ValueError
        print(f"error: {e}", file=sys.stderr)
        return 2
    for reason in skipped:
        print(reason)
    for name, task_data in data.items():
        print(f"{name}: {task_data.info.source}" + (f"\n  notice: {task_data.info.notice}" if task_data.info.notice else ""))
    machine = timing.machine_peak(backends.values())
    env = timing.environment(backends.values(), configured, args.device, args.command)
    todo = [cell for cell in cells if cell.key not in skip]
    print(f"{len(todo)} runs to do ({len(cells) - len(todo)} already in {args.out}); "
          f"sgemm peak {machine['peak_gflops']:.1f} GFLOP/s")
    finished = []
    for cell in todo:
        stop_if_interrupted()
        try:
            finished.append(run_cell(cell, data[cell.task.name], args, suite, machine, env))
        except ModeUnsupportedError as e:
            print(f"skipped {cell.id}: {e}")
    print_summary(finished, args.out)
    if not args.no_report:
        build_report(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
