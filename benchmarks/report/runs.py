"""Loading the runs and their histories, and choosing which runs a figure or a sentence shows.

Per task and backend, the *representative* mode is the one with the most seeds, ties broken by the fastest
median step, among the runs of the spec optimisers where there are any (the parity claim is about those);
curves, samples and GIFs show its lowest seed, the sample verdict compares its seeds. Speed compares each
backend's fastest configuration (faster.py: mode, optimiser implementation, steps per call, threads) and its configuration
out of the box (eager, its own optimiser, one step per call), among the runs timed alone on their cores or GPU
(timing mode "exclusive", benchmarks/record.py) and within one host: runs of several hosts are never compared.
"""
from __future__ import annotations

import itertools
import math
from pathlib import Path

from benchmarks import store
from benchmarks.report.doc import BACKEND_NAMES
from common import metrics as judge
from common.backend import BACKENDS, BOTH, MODES


def load_runs(out_dir: Path) -> list[dict]:
    """The records, the latest per cell; ValueError if the folder has no runs."""
    if not (out_dir / store.RUNS_FILE).exists():
        raise ValueError(f"{out_dir} has no {store.RUNS_FILE}: nothing to report (run python -m benchmarks.run "
                         f"--out {out_dir} first)")
    records = store.read_records(out_dir)
    if not records:
        raise ValueError(f"{out_dir / store.RUNS_FILE} holds no runs: nothing to report")
    latest = {store.cell_of(r): r for r in records}
    return sorted(latest.values(), key=run_order)


def run_order(record: dict) -> tuple:
    """Tasks in registry order, PyTorch before TensorFlow, modes eager, compiled, xla, then seeds."""
    from common.tasks import TASKS

    task_rank = list(TASKS).index(record["task"]) if record["task"] in TASKS else len(TASKS)
    backend_rank = list(BACKEND_NAMES).index(record["backend"]) if record["backend"] in BACKEND_NAMES else 9
    mode_rank = MODES.index(record["mode"]) if record["mode"] in MODES else 9
    return (task_rank, record["task"], backend_rank, mode_rank, record["seed"])


def pairs_of(runs: list[dict]) -> list[tuple[str, str]]:
    """Every pair of the backends these runs hold, in registry order (torch-tf, torch-jax, tf-jax): the pairs each
    comparison is made for. Fewer than two backends: PyTorch and TensorFlow, the pair a missing side is named of."""
    present = [name for name in BACKENDS if any(r["backend"] == name for r in runs)]
    return list(itertools.combinations(present, 2)) or [BOTH]


class Histories:
    """Loads each run's arrays once; None (and a note) when the file is missing or unreadable."""

    def __init__(self, out_dir: Path):
        self.out_dir, self.cache, self.missing = out_dir, {}, []

    def __call__(self, record: dict) -> dict | None:
        run_id = record["run_id"]
        if run_id not in self.cache:
            try:
                self.cache[run_id] = store.read_history(self.out_dir, record["history"])
            except (OSError, KeyError, ValueError) as e:
                self.cache[run_id] = None
                self.missing.append(f"{run_id}: {e}")
        return self.cache[run_id]


def timed_ok(record: dict) -> bool:
    """A run whose step times enter speed comparisons: timed steps, and its cores or GPU to itself (a packed or
    metrics-only run keeps its times, but they say how busy its node was)."""
    return (record.get("timing_mode", "exclusive") == "exclusive" and record.get("timed_steps", 0) > 0
            and math.isfinite(record.get("median_step_s", math.nan)))


def host_of(record: dict) -> str:
    """The machine a run ran on (records before schema 3 do not say)."""
    return record.get("environment", {}).get("host") or "unknown host"


def by_host(runs: list[dict]) -> dict[str, list[dict]]:
    """host -> its runs, in order of first appearance."""
    out = {}
    for r in runs:
        out.setdefault(host_of(r), []).append(r)
    return out


def optimizer_of(record: dict) -> str:
    return record["config"].get("optimizer", "spec")


def pack_of(record: dict) -> int:
    """The run's pack (common/spec.py GAN.pack; 1 for records written before packing)."""
    return record["config"].get("pack", 1)


def config_name(record: dict) -> str:
    """The run's mode, plus whatever else sets its speed where it is not the default: the optimiser
    implementation, the steps per call K, the threads asked for, a dtype other than float32, the pack (which
    changes the GAN too)."""
    k, threads = record.get("steps_per_call", 1), record["config"].get("threads")
    dtype, pack = record["config"].get("dtype", "float32"), pack_of(record)
    return " ".join([record["mode"]] + ([optimizer_of(record)] if optimizer_of(record) != "spec" else [])
                    + ([f"K={k}"] if k != 1 else []) + ([f"{threads} thread{'s' if threads != 1 else ''}"] if threads is not None else [])
                    + ([dtype] if dtype != "float32" else []) + ([f"pack {pack}"] if pack != 1 else []))


def out_of_the_box(runs: list[dict], backend: str) -> dict | None:
    """The backend as a first script runs it: eager, its own optimiser, one step per call, default threads if
    such a run exists (the fastest of them)."""
    plain = [r for r in runs if r["mode"] == "eager" and optimizer_of(r) == "native" and r.get("steps_per_call", 1) == 1]
    plain = [r for r in plain if r["backend"] == backend and r["status"] == "finished" and timed_ok(r)]
    default_threads = [r for r in plain if r["config"].get("threads") is None]
    return min(default_threads or plain, key=lambda r: r["median_step_s"], default=None)


def parity_pool(runs: list[dict], backend: str) -> list[dict]:
    """The backend's runs with the spec optimisers where there are any, else all of its runs."""
    own = [r for r in runs if r["backend"] == backend]
    return [r for r in own if optimizer_of(r) == "spec"] or own


def representative_mode(runs: list[dict], backend: str) -> str | None:
    """The backend's mode with the most seeds, ties broken by the fastest median step (in parity_pool)."""
    modes = {}
    for r in parity_pool(runs, backend):
        modes.setdefault(r["mode"], []).append(r)
    if not modes:
        return None

    def key(mode):
        times = [r["median_step_s"] for r in modes[mode] if timed_ok(r)]
        return (-len(modes[mode]), min(times) if times else math.inf)

    return min(modes, key=key)


def representatives(runs: list[dict]) -> dict[str, list[dict]]:
    """backend -> the runs (all seeds, sorted) of its representative mode."""
    out = {}
    for backend in BACKEND_NAMES:
        mode = representative_mode(runs, backend)
        if mode is not None:
            pool = [r for r in parity_pool(runs, backend) if r["mode"] == mode]
            # one configuration: the seeds of the most common one (K or threads change speed, not samples)
            name = max(sorted({config_name(r) for r in pool}), key=lambda n: sum(config_name(r) == n for r in pool))
            out[backend] = sorted((r for r in pool if config_name(r) == name), key=lambda r: r["seed"])
    return out


def judged_metrics(runs: list[dict]) -> list[str]:
    """Metric names with a better direction present in these runs, in METRIC_INFO order."""
    present = {name for r in runs for name in r.get("metrics", {})}
    return [name for name, info in judge.METRIC_INFO.items() if name in present and info["better"]]


def metric_values(runs: list[dict], name: str) -> list[float]:
    return [r["metrics"].get(name, math.nan) if r["status"] == "finished" else math.nan for r in runs]
