"""Clocks and context for the benchmark: step-time statistics, this machine's matmul peak, environment.

How a run is timed (benchmarks/cell.py does it, these helpers summarise it):
* each step's inputs are drawn from the Stream BEFORE the step clock starts; drawing is timed on its own
  (``data_time``);
* ``time.perf_counter()`` is read around each ``train_step`` (or ``train_steps`` of K steps: each step then
  gets call time / K). The trainer returns Python floats, so on CUDA the call cannot return before the
  device finished the step: the clock includes the device work (the float conversion synchronises);
* the first ``warmup`` steps are excluded from the statistics; the first call's excess over a steady call
  (trace/compile in compiled modes, first-call overhead in eager) is ``compile_s``, never mixed into the median;
* a timed run of a dense GAN on a CPU gets its step's floor (``step_floor``): the step's matmuls timed alone at their
  shapes in the run's framework plus the optimiser updates' least memory traffic at the copy bandwidth measured in
  the same process; "% of floor" = floor / median step time, beside "% of peak";
* the machine's load is recorded around the timed steps (``load_snapshot`` before, ``load_since`` after): the load
  average and the CPU time every other process took meanwhile. A run beside other work is not hidden: past
  BUSY_OTHERS_CORES the times are marked as measured on a busy machine (the report says so beside each verdict).
"""
from __future__ import annotations

import datetime
import functools
import os
import platform
import subprocess
import time
from pathlib import Path

import numpy as np

from common.flops import dense_products, optimizer_traffic_bytes, train_step_flops

SGEMM_SIZE = 2048
SGEMM_REPEATS = 3
# Other processes' average CPU use (in cores) above which a timing counts as taken on a busy machine. A quarter of
# a core: on this 2-core machine, PyTorch's parabola step under torch.compile ran 7x slower beside other work
# (issue 26), so even a small share of the cores taken by others changes the figures.
BUSY_OTHERS_CORES = 0.25


def default_warmup(steps: int) -> int:
    """Warm-up steps excluded from timing: max(5, 2% of the steps), never all of them."""
    return min(max(5, round(0.02 * steps)), max(steps - 1, 0))


def summarize_steps(step_times: np.ndarray, timed: np.ndarray) -> dict:
    """Median, IQR and count of the timed per-step times (seconds)."""
    times = np.asarray(step_times, dtype=np.float64)[np.asarray(timed, dtype=bool)]
    if times.size == 0:
        return {"median_step_s": float("nan"), "p25_step_s": float("nan"), "p75_step_s": float("nan"), "timed_steps": 0}
    p25, median, p75 = np.percentile(times, [25, 50, 75])
    return {"median_step_s": float(median), "p25_step_s": float(p25), "p75_step_s": float(p75),
            "timed_steps": int(times.size)}


def compile_seconds(first_call_s: float, steady_call_s: float) -> float:
    """The first call's excess over a steady call (>= 0)."""
    if not np.isfinite(steady_call_s):
        return float("nan")
    return max(0.0, first_call_s - steady_call_s)


def sgemm_gflops_numpy(size: int | None = None, repeats: int = SGEMM_REPEATS) -> float:
    """Best of ``repeats`` float32 size x size matmuls (default SGEMM_SIZE) with numpy's BLAS, in GFLOP/s."""
    size = size or SGEMM_SIZE
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size), dtype=np.float32)
    b = rng.standard_normal((size, size), dtype=np.float32)
    a @ b  # warm-up: thread pool start, page faults
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def machine_peak(backend_modules) -> dict:
    """sgemm GFLOP/s with numpy and with each backend's own matmul (if it exposes ``sgemm_gflops()``).

    The peak used for "% of peak" is the max of all of them: the best this machine showed in this run.
    """
    peak = {"numpy": sgemm_gflops_numpy()}
    for module in backend_modules:
        measure = getattr(module, "sgemm_gflops", None)
        if measure is not None:
            peak[module.NAME] = float(measure())
    return {"sgemm_gflops": peak, "peak_gflops": max(peak.values())}


@functools.cache
def memory_bandwidth_gbs(megabytes: int = 256) -> float:
    """Copy bandwidth (read + write) of a large float32 array with numpy, best of 3; measured once per process."""
    a = np.ones(megabytes * 2**18, dtype=np.float32)
    b = np.empty_like(a)
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        np.copyto(b, a)
        best = min(best, time.perf_counter() - start)
    return 2 * a.nbytes / best / 1e9


@functools.cache
def _matmul_seconds(module, shape: tuple[int, int, int], dtype: str, device: str) -> float:
    return float(module.matmul_seconds(*shape, dtype=dtype, device=device))


def matmul_only_seconds(spec, module, device: str = "cpu") -> tuple[float, dict[str, float]]:
    """A step's matmuls alone, each shape timed in ``module``'s framework (its ``matmul_seconds``, once per process
    and shape), summed as common/flops.py's dense_products lists them and scaled to the step's FLOP count (the step
    runs G and D forward and backward several times). Also the GFLOP/s each shape allows ("m x k x n" -> GFLOP/s)."""
    per_shape = {shape: _matmul_seconds(module, shape, spec.dtype, device) for shape in dict.fromkeys(dense_products(spec))}
    return _step_share(spec, per_shape), {f"{m}x{k}x{n}": 2 * m * k * n / t / 1e9 for (m, k, n), t in per_shape.items()}


def fastest_matmul_seconds(spec, modules, device: str = "cpu") -> float:
    """matmul_only_seconds with each shape at the fastest of ``modules``' matmuls: the machine's floor for the step's
    products, whatever the framework. A framework that runs the products faster inside its step than alone (XLA runs
    independent ones side by side) can beat its own floor; this one it can still be set against."""
    return _step_share(spec, {shape: min(_matmul_seconds(module, shape, spec.dtype, device) for module in modules)
                              for shape in dict.fromkeys(dense_products(spec))})


def _step_share(spec, seconds_of_shape: dict[tuple[int, int, int], float]) -> float:
    """The per-pass products' seconds summed and scaled to the step's FLOP count."""
    shapes = dense_products(spec)
    return sum(seconds_of_shape[shape] for shape in shapes) * train_step_flops(spec)["total"] / \
        sum(2 * m * k * n for m, k, n in shapes)


def step_floor_seconds(matmul_s: float, traffic_bytes: int, bandwidth_gbs: float) -> float:
    """The step's floor: its matmuls timed alone plus the optimiser's least memory traffic at the copy bandwidth
    measured in the same run. "% of floor" is floor / step time: 100% would be a step that is nothing but these."""
    return matmul_s + traffic_bytes / (bandwidth_gbs * 1e9)


def step_floor(spec, module, device: str, median_step_s: float) -> dict | None:
    """The record's ``floor``: floor_s, its parts and pct_of_floor, for a dense GAN on a CPU; None otherwise (a
    convolution's floor is not a set of matmuls, and a GPU's memory bandwidth is not numpy's)."""
    if dense_products(spec) is None or module.device_name(device) != "cpu" or not hasattr(module, "matmul_seconds"):
        return None
    matmul_s, _ = matmul_only_seconds(spec, module, "cpu")
    traffic, bandwidth = optimizer_traffic_bytes(spec), memory_bandwidth_gbs()
    floor = step_floor_seconds(matmul_s, traffic, bandwidth)
    return {"floor_s": floor, "matmul_s": matmul_s, "optimizer_traffic_bytes": traffic,
            "memory_bandwidth_gbs": bandwidth, "pct_of_floor": 100.0 * floor / median_step_s}


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def git_state() -> dict:
    """The suite's commit and whether the working tree differs from it ("unknown" outside a git repo)."""
    root = Path(__file__).resolve().parent.parent

    def git(*args):
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=10)

    try:
        head = git("rev-parse", "HEAD")
        if head.returncode != 0:
            return {"commit": "unknown", "dirty": None}
        status = git("status", "--porcelain", "--untracked-files=no")
        return {"commit": head.stdout.strip(), "dirty": bool(status.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        return {"commit": "unknown", "dirty": None}


def environment(backend_modules, configured: dict, device: str, command: list[str]) -> dict:
    """What produced a result: software versions, CPU/GPU, thread and determinism settings, commit, date."""
    versions = {"python": platform.python_version(), "numpy": np.__version__}
    devices = {}
    for module in backend_modules:
        versions.update(module.versions())
        devices[module.NAME] = module.device_name(device)
    return {
        "host": platform.node(),  # the report compares speed within one host only
        "versions": versions,
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "devices": devices,
        "configure": configured,  # what each backend's configure(threads, deterministic) reported
        "TF_ENABLE_ONEDNN_OPTS": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "unset"),
        "git": git_state(),
        "argv": list(command),  # the run's own arguments, also when main(argv) is called in-process
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def _busy_cpu_seconds() -> float:
    """CPU seconds every process of the machine has spent since boot (/proc/stat's first line, idle and iowait
    left out); nan where there is no /proc/stat."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return float("nan")
    user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _own_cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def load_snapshot() -> dict:
    """What ``load_since`` needs: the wall clock, the machine's and this process's CPU seconds so far."""
    return {"wall": time.perf_counter(), "busy": _busy_cpu_seconds(), "own": _own_cpu_seconds()}


def load_since(before: dict) -> dict:
    """The machine's load since ``before`` (a load_snapshot): the 1-minute load average now, the CPU seconds other
    processes took meanwhile (the machine's less this process's), as cores on average, the machine's cores, and
    ``busy``: whether they took more than BUSY_OTHERS_CORES (None where it cannot be told: no /proc/stat)."""
    after = load_snapshot()
    wall = max(after["wall"] - before["wall"], 1e-9)
    others = (after["busy"] - before["busy"]) - (after["own"] - before["own"])
    others = max(0.0, others) if np.isfinite(others) else float("nan")  # max(0, nan) would read as idle
    cores = others / wall
    known = np.isfinite(cores)
    return {"load_avg_1m": float(os.getloadavg()[0]) if hasattr(os, "getloadavg") else float("nan"),
            "others_cpu_s": float(others) if known else float("nan"),
            "others_cores": float(cores) if known else float("nan"),
            "wall_s": float(wall), "cores": os.cpu_count(), "busy": bool(cores > BUSY_OTHERS_CORES) if known else None}


def load_note(load: dict | None) -> str:
    """'' for an idle machine or an unknown load; else the words a verdict carries: "busy machine: other processes
    took 1.3 of 2 cores (load average 3.1)"."""
    if not load or not load.get("busy"):
        return ""
    return (f"busy machine: other processes took {load['others_cores']:.1f} of {load.get('cores') or '?'} cores "
            f"(load average {load['load_avg_1m']:.1f})")
