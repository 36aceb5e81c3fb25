"""The report's charts: matplotlib (Agg) PNGs, one function per figure; the pictures of generated samples
(scatter plots, curves, image grids, progress GIFs) are in samples.py.

Every function takes plain numpy arrays and labels (the section modules pick the runs) and writes one
file. Colours are fixed per backend everywhere: PyTorch orange, TensorFlow blue, JAX green.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks.report.doc import BACKEND_SHORT  # noqa: E402
from common.checkpoint import atomic_write  # noqa: E402

COLOURS = {"torch": "#e8710a", "tf": "#1f6fb4", "jax": "#2a9d3a"}
COLOUR_NAMES = {"torch": "orange", "tf": "blue", "jax": "green"}  # COLOURS in the captions' words
# Same-seed curves often coincide: PyTorch is drawn wider, beneath TensorFlow, so it shows as an orange rim; JAX,
# drawn last, narrower still on top, so TensorFlow shows as a blue rim around it.
WIDTHS = {"torch": 3.2, "tf": 1.3, "jax": 0.6}
MODE_STYLES = {"eager": ":", "compiled": "-", "xla": "--"}
DPI = 100
SWEEP_AXES = {"batch": "batch size", "width": "width factor (x the task's hidden sizes)"}
SMOOTH_POINTS = 50  # the smoothed curve averages over about len / SMOOTH_POINTS steps

plt.rcParams.update({"axes.grid": True, "grid.alpha": 0.3, "axes.spines.top": False,
                     "axes.spines.right": False, "figure.dpi": DPI, "font.size": 10,
                     "figure.constrained_layout.use": True})  # one layout pass, unlike bbox_inches="tight"


def save(fig, path: Path) -> Path:
    try:
        atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=DPI))  # the suite's one writer
    finally:
        plt.close(fig)
    return path


def smooth(values: np.ndarray) -> np.ndarray:
    """Centred moving average over ~len/SMOOTH_POINTS steps (edges use the available neighbours)."""
    values = np.asarray(values, dtype=np.float64)
    window = max(1, len(values) // SMOOTH_POINTS)
    if window == 1:
        return values
    kernel = np.ones(window)
    finite = np.isfinite(values)
    total = np.convolve(np.where(finite, values, 0.0), kernel, mode="same")
    count = np.convolve(finite.astype(float), kernel, mode="same")
    with np.errstate(invalid="ignore", divide="ignore"):
        return total / count


# ----------------------------------------------------------------------------- training curves


def training_curves(curves: dict[str, dict[str, np.ndarray]], labels: dict[str, str], path: Path, title: str,
                    panels: tuple[tuple[str, str], ...]) -> Path:
    """One panel per (key, y label); in each, every backend's raw curve (faint) and smoothed curve.
    ``curves``: backend -> {key: per-step values}."""
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 3.6), squeeze=False)
    for ax, (key, ylabel) in zip(axes[0], panels):
        for backend, values in curves.items():
            y = values[key]
            x = np.arange(1, len(y) + 1)
            ax.plot(x, y, color=COLOURS[backend], alpha=0.2, linewidth=0.7)
            ax.plot(x, smooth(y), color=COLOURS[backend], linewidth=WIDTHS.get(backend, 1.6), label=labels[backend])
        ax.set_xlabel("training step")
        ax.set_ylabel(ylabel)
        ax.legend(loc="best", fontsize=8)
    fig.suptitle(title)
    return save(fig, path)


def d_outputs(curves: dict[str, dict[str, np.ndarray]], labels: dict[str, str], path: Path, title: str,
              ylabel: str) -> Path:
    """Mean D(real) (solid) and D(fake) (dashed) per backend, smoothed over the faint raw values."""
    fig, ax = plt.subplots(figsize=(8, 3.6))
    for backend, values in curves.items():
        for key, style, name in (("d_real", "-", "D(real)"), ("d_fake", "--", "D(fake)")):
            y = values[key]
            x = np.arange(1, len(y) + 1)
            ax.plot(x, y, color=COLOURS[backend], alpha=0.15, linewidth=0.6)
            ax.plot(x, smooth(y), style, color=COLOURS[backend], linewidth=WIDTHS.get(backend, 1.5),
                    label=f"{labels[backend]}: {name}")
    ax.set_xlabel("training step")
    ax.set_ylabel(ylabel)
    ax.legend(loc="best", fontsize=8)
    ax.set_title(title)
    return save(fig, path)


# ----------------------------------------------------------------------------- divergence and speed


def divergence(pairs: list[dict], path: Path, title: str, floors: list[dict] = ()) -> Path:
    """Per same-seed pair of runs: relative L2 between the weights (left) and |D loss| / |G loss|
    differences per step (right), log y. Zeros (bit-identical values) cannot show on a log axis. ``floors``:
    the chaos floor's band (same-framework pairs with other rounding), grey dashed on the left."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 3.8))
    for floor in floors:
        w = np.where(floor["weight_rel_l2"] > 0, floor["weight_rel_l2"], np.nan)
        left.plot(floor["sketch_steps"], w, "s--", color="#777777", markersize=2.5, linewidth=1.1, label=floor["label"])
    colours = plt.cm.viridis(np.linspace(0.0, 0.8, max(len(pairs), 1)))
    for colour, pair in zip(colours, pairs):
        w = np.where(pair["weight_rel_l2"] > 0, pair["weight_rel_l2"], np.nan)
        left.plot(pair["sketch_steps"], w, "o-", color=colour, markersize=3, label=pair["label"])
        for key, style in (("d_loss_diff", "-"), ("g_loss_diff", "--")):
            y = np.asarray(pair[key], dtype=np.float64)
            x = np.arange(1, len(y) + 1)
            right.plot(x[y > 0], y[y > 0], ".", color=colour, alpha=0.3, markersize=2)
            smoothed = smooth(y)  # zeros included: the mean gap, drawn where it is not zero
            right.plot(x, np.where(smoothed > 0, smoothed, np.nan), style, color=colour, linewidth=1.3)
    for ax in (left, right):
        ax.set_yscale("log")
        ax.set_xlabel("training step")
    left.legend(fontsize=7, loc="best")
    right.legend([plt.Line2D([], [], color="k"), plt.Line2D([], [], color="k", linestyle="--")],
                 ["D loss", "G loss"], fontsize=7, loc="best")
    # the axes name the backends where every curve is of one pair; else each curve's label names its pair
    named = {p["backends"] for p in pairs}
    a, b = [BACKEND_SHORT.get(x, x) for x in named.pop()] if len(named) == 1 else ("first", "second")
    left.set_ylabel(f"‖w_{a} − w_{b}‖ / ‖w_{a}‖")
    right.set_ylabel(f"|loss_{a} − loss_{b}|")
    fig.suptitle(title)
    return save(fig, path)


def bars(values: dict[str, list[tuple[str, str, float, float, float]]], path: Path, title: str, ylabel: str) -> Path:
    """Grouped bars: one panel per task; a bar per (backend, mode) with value and optional (low, high)
    error range. Log scale when the values span more than 10x."""
    tasks = list(values)
    fig, axes = plt.subplots(1, len(tasks), figsize=(max(4.0, 3.4 * len(tasks)), 3.8), squeeze=False)
    everything = [v for rows in values.values() for (_, _, v, _, _) in rows if np.isfinite(v) and v > 0]
    log = bool(everything) and max(everything) / min(everything) > 10
    for ax, task in zip(axes[0], tasks):
        rows = values[task]
        x = np.arange(len(rows))
        heights = [v for (_, _, v, _, _) in rows]
        colours = [COLOURS[b] for (b, _, _, _, _) in rows]
        hatches = ["" if m.startswith("compiled") else ("//" if m.startswith("xla") else "..") for (_, m, _, _, _) in rows]
        lows = [max(v - lo, 0) if np.isfinite(lo) else 0 for (_, _, v, lo, _) in rows]
        highs = [max(hi - v, 0) if np.isfinite(hi) else 0 for (_, _, v, _, hi) in rows]
        errors = [lows, highs] if any(lows) or any(highs) else None
        drawn = ax.bar(x, heights, color=colours, edgecolor="white", yerr=errors, capsize=3)
        for bar, hatch in zip(drawn, hatches):
            bar.set_hatch(hatch)
        ax.set_xticks(x, [f"{BACKEND_SHORT.get(b, b)}\n{m.replace(' ', chr(10))}" for (b, m, _, _, _) in rows],
                      fontsize=8)
        ax.set_title(task)
        if log:
            ax.set_yscale("log")
        ax.grid(axis="x", visible=False)
    axes[0][0].set_ylabel(ylabel)
    fig.suptitle(title + (" (log scale)" if log else ""))
    return save(fig, path)


def phase_bars(rows: list[tuple[str, str, str, dict[str, float]]], path: Path) -> Path:
    """Stacked phase times (ms) per (task, backend, mode): e.g. D step, G step, sampling."""
    phases = sorted({name for (_, _, _, times) in rows for name in times})
    fig, ax = plt.subplots(figsize=(max(6.0, 0.7 * len(rows) + 2), 4.0))
    bottom = np.zeros(len(rows))
    palette = plt.cm.Set2(np.linspace(0, 1, max(len(phases), 1)))
    for colour, phase in zip(palette, phases):
        heights = np.array([times.get(phase, 0.0) * 1e3 for (_, _, _, times) in rows])
        ax.bar(np.arange(len(rows)), heights, bottom=bottom, color=colour, label=phase)
        bottom += heights
    ax.set_xticks(np.arange(len(rows)), [f"{t}\n{BACKEND_SHORT.get(b, b)} {m}" for (t, b, m, _) in rows],
                  fontsize=7)
    for tick, (_, b, _, _) in zip(ax.get_xticklabels(), rows):
        tick.set_color(COLOURS[b])
    ax.set_ylabel("median time per call (ms)")
    ax.set_title("Phase times (median of extra calls after training)")
    ax.legend(fontsize=8)
    return save(fig, path)


def sweep_plot(sweep, path: Path) -> Path:
    """Scaling sweep (a DataFrame): median step time against batch size or width, log-log, with IQR band."""
    kinds = list(dict.fromkeys(sweep["sweep"]))
    fig, axes = plt.subplots(1, len(kinds), figsize=(6 * len(kinds), 4.0), squeeze=False)
    group_keys = [k for k in ("task", "backend", "mode") if k in sweep.columns]
    for ax, kind in zip(axes[0], kinds):
        part = sweep[sweep["sweep"] == kind]
        for key, rows in part.groupby(group_keys, sort=True):
            key = dict(zip(group_keys, key if isinstance(key, tuple) else (key,)))
            rows = rows.sort_values("value")
            label = " ".join(BACKEND_SHORT.get(str(key[k]), str(key[k])) for k in group_keys)
            colour = COLOURS.get(key.get("backend"), "black")
            style = MODE_STYLES.get(key.get("mode"), "-")
            ax.plot(rows["value"], rows["median_s"] * 1e3, style, marker="o", color=colour, label=label, markersize=4)
            if {"p25_s", "p75_s"} <= set(rows.columns):
                ax.fill_between(rows["value"], rows["p25_s"] * 1e3, rows["p75_s"] * 1e3, color=colour, alpha=0.12)
        ax.set_xscale("log")
        ax.set_yscale("log")
        values = sorted(set(part["value"]))
        ax.set_xticks(values, [f"{v:g}" for v in values])  # the swept values, not log-scale minor labels
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.yaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xlabel(SWEEP_AXES.get(kind, kind))
        ax.set_ylabel("median step time (ms)")
        ax.set_title(f"scaling with {SWEEP_AXES.get(kind, kind).split(' (')[0]}")
        ax.legend(fontsize=7)
    return save(fig, path)
