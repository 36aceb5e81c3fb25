"""The report's figures: matplotlib (Agg) PNGs and Pillow GIFs, one function per figure.

Every function takes plain numpy arrays and labels (benchmarks/report.py picks the runs) and writes one
file. Colours are fixed per backend everywhere: PyTorch orange, TensorFlow blue.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image, ImageDraw, ImageFont  # noqa: E402

from common.metrics import PARABOLA_X  # noqa: E402

COLOURS = {"torch": "#e8710a", "tf": "#1f6fb4"}
# Same-seed curves often coincide: PyTorch is drawn wider, beneath TensorFlow, so it shows as an orange rim.
WIDTHS = {"torch": 3.2, "tf": 1.3}
REAL_COLOUR = "#555555"
MODE_STYLES = {"eager": ":", "compiled": "-", "xla": "--"}
DPI = 100
GIF_FRAME_MS = 400
GIF_LAST_FRAME_MS = 1500
GIF_DPI = 80
GIF_CURVES = 24  # curves per GIF frame: enough to see the spread, few enough to stay light
GIF_COLOURS = 128
GRID_SIDE = 8  # 8 x 8 image grids
GRID_GAP = 2  # pixels between tiles
SHORT_NAMES = {"torch": "PyTorch", "tf": "TF"}
SWEEP_AXES = {"batch": "batch size", "width": "width factor (x the task's hidden sizes)"}
SMOOTH_POINTS = 50  # the smoothed curve averages over about len / SMOOTH_POINTS steps

plt.rcParams.update({"axes.grid": True, "grid.alpha": 0.3, "axes.spines.top": False,
                     "axes.spines.right": False, "figure.dpi": DPI, "font.size": 10,
                     "figure.constrained_layout.use": True})  # one layout pass, unlike bbox_inches="tight"


def save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI)
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


# ----------------------------------------------------------------------------- samples


def sample_kind(data_shape: tuple[int, ...]) -> str:
    """How to draw a task's samples: "digits", "faces", "points" (2-D) or "curves" (other 1-D data)."""
    if len(data_shape) == 3:
        return "faces" if data_shape[0] == 3 else "digits"
    return "points" if data_shape[0] == 2 else "curves"


def draw_curves(ax, samples: np.ndarray, colour: str, bounds: bool) -> None:
    x = PARABOLA_X if samples.shape[1] == len(PARABOLA_X) else np.arange(samples.shape[1])
    for row in samples:
        ax.plot(x, row, color=colour, alpha=0.35, linewidth=0.8)
    if bounds:
        ax.plot(x, x**2, "k--", linewidth=1.2, label="x²")
        ax.plot(x, 2 * x**2 + 1, "k-.", linewidth=1.2, label="2x² + 1")
        ax.legend(loc="upper center", fontsize=8)
    ax.set_xlabel("x")
    ax.set_ylabel("y")


def point_limits(real: np.ndarray | None, generated: list[np.ndarray]) -> tuple[tuple, tuple]:
    """Axis limits that hold the real data with a margin and most generated points (fixed across frames)."""
    pts = np.concatenate([g for g in generated if len(g)] + ([real] if real is not None else []))
    pts = pts[np.isfinite(pts).all(axis=1)]
    if real is not None and len(real):
        lo, hi = real.min(axis=0), real.max(axis=0)
        gen_lo, gen_hi = np.percentile(pts, 1, axis=0), np.percentile(pts, 99, axis=0)
        lo, hi = np.minimum(lo, gen_lo), np.maximum(hi, gen_hi)
    else:
        lo, hi = pts.min(axis=0), pts.max(axis=0)
    margin = 0.1 * np.maximum(hi - lo, 1e-3)
    return (lo[0] - margin[0], hi[0] + margin[0]), (lo[1] - margin[1], hi[1] + margin[1])


def draw_points(ax, samples: np.ndarray, real: np.ndarray | None, colour: str, limits) -> None:
    if real is not None:
        ax.scatter(real[:, 0], real[:, 1], s=4, color=REAL_COLOUR, alpha=0.25, label="real", linewidths=0)
    ax.scatter(samples[:, 0], samples[:, 1], s=7, color=colour, alpha=0.8, label="generated", linewidths=0)
    ax.set_xlim(*limits[0])
    ax.set_ylim(*limits[1])
    ax.set_aspect("equal", adjustable="box")
    ax.legend(loc="upper right", fontsize=8, markerscale=2)
    ax.set_xlabel("x₁")
    ax.set_ylabel("x₂")


def image_grid(samples: np.ndarray, data_shape: tuple[int, ...]) -> np.ndarray:
    """(n, C*H*W) in [-1, 1], rows in (C, H, W) order -> an 8 x 8 tiled uint8 image (H, W) or (H, W, 3)."""
    channels, height, width = data_shape
    n = GRID_SIDE * GRID_SIDE
    x = np.asarray(samples[:n], dtype=np.float32).reshape(-1, channels, height, width)
    x = np.nan_to_num(x, nan=-1.0).clip(-1.0, 1.0)
    tiles = np.full((n, channels, height, width), -1.0, dtype=np.float32)
    tiles[:len(x)] = x
    pixels = ((tiles + 1.0) * 127.5).round().astype(np.uint8).transpose(0, 2, 3, 1)  # (n, H, W, C)
    step_h, step_w = height + GRID_GAP, width + GRID_GAP
    canvas = np.full((GRID_SIDE * step_h + GRID_GAP, GRID_SIDE * step_w + GRID_GAP, channels), 255, dtype=np.uint8)
    for i, tile in enumerate(pixels):
        r, c = divmod(i, GRID_SIDE)
        canvas[GRID_GAP + r * step_h:GRID_GAP + r * step_h + height, GRID_GAP + c * step_w:GRID_GAP + c * step_w + width] = tile
    return canvas[..., 0] if channels == 1 else canvas


def samples_side_by_side(samples: dict[str, np.ndarray], labels: dict[str, str], data_shape: tuple[int, ...],
                         real: np.ndarray | None, bounds: bool, path: Path, title: str) -> Path:
    """The final samples of each backend (same noise), one panel per backend."""
    kind = sample_kind(data_shape)
    fig, axes = plt.subplots(1, len(samples), figsize=(5.2 * len(samples), 5.0), squeeze=False)
    limits = point_limits(real, list(samples.values())) if kind == "points" else None
    for ax, (backend, x) in zip(axes[0], samples.items()):
        x = np.asarray(x, dtype=np.float32)
        if kind == "curves":
            draw_curves(ax, x, COLOURS[backend], bounds)
        elif kind == "points":
            draw_points(ax, x, real, COLOURS[backend], limits)
        else:
            ax.imshow(image_grid(x, data_shape), cmap="gray" if kind == "digits" else None, interpolation="nearest")
            ax.axis("off")
        ax.set_title(labels[backend], color=COLOURS[backend])
    fig.suptitle(title)
    return save(fig, path)


def grid_frame(x: np.ndarray, step: int, backend: str, label: str, data_shape: tuple[int, ...]) -> Image.Image:
    image = Image.fromarray(image_grid(x, data_shape)).convert("RGB")
    if data_shape[0] == 1:  # 28x28 digits: twice as large to be readable
        image = image.resize((image.width * 2, image.height * 2), Image.NEAREST)
    framed = Image.new("RGB", (image.width, image.height + 22), "white")
    framed.paste(image, (0, 22))
    font = ImageFont.load_default(size=14)
    ImageDraw.Draw(framed).text((4, 3), f"{label}: step {int(step)}", fill=COLOURS[backend], font=font)
    return framed


def plot_frames(snapshots: np.ndarray, steps: np.ndarray, backend: str, label: str, kind: str,
                real: np.ndarray | None, bounds: bool) -> list[Image.Image]:
    """One matplotlib figure whose static part is rendered once (blitting); each frame redraws only the
    generated points or curves and the title."""
    fig, ax = plt.subplots(figsize=(4.2, 4.0), dpi=GIF_DPI)
    if kind == "curves":
        draw_curves(ax, snapshots[0][:GIF_CURVES], COLOURS[backend], bounds)
        moving = ax.lines[:min(GIF_CURVES, len(snapshots[0]))]
        finite = snapshots[np.isfinite(snapshots)]
        ax.set_ylim(*((-1.5, 4.5) if bounds else (finite.min(), finite.max())))
    else:
        draw_points(ax, snapshots[0], real, COLOURS[backend], point_limits(real, list(snapshots)))
        moving = [ax.collections[-1]]
    title = ax.set_title(f"{label}: step {int(steps[-1])}", color=COLOURS[backend], fontsize=10)
    for artist in [*moving, title]:
        artist.set_animated(True)
    canvas = fig.canvas
    canvas.draw()
    background = canvas.copy_from_bbox(fig.bbox)
    frames = []
    for x, step in zip(snapshots, steps):
        canvas.restore_region(background)
        if kind == "curves":
            for line, row in zip(moving, x):
                line.set_ydata(row)
        else:
            moving[0].set_offsets(x)
        title.set_text(f"{label}: step {int(step)}")
        for artist in [*moving, title]:
            ax.draw_artist(artist)
        frames.append(Image.fromarray(np.asarray(canvas.buffer_rgba())[..., :3].copy()))
    plt.close(fig)
    return frames


def progress_gif(snapshots: np.ndarray, steps: np.ndarray, backend: str, label: str, data_shape: tuple[int, ...],
                 real: np.ndarray | None, bounds: bool, path: Path) -> Path:
    """An animated GIF of the snapshots (fixed noise) over training: image grids straight from the pixels,
    scatter plots and curves as matplotlib frames."""
    kind = sample_kind(data_shape)
    snapshots = np.asarray(snapshots, dtype=np.float32)
    if kind in ("digits", "faces"):
        frames = [grid_frame(x, step, backend, label, data_shape) for x, step in zip(snapshots, steps)]
    else:
        frames = plot_frames(snapshots, steps, backend, label, kind, real, bounds)
    # One shared palette: quantising each frame on its own makes colours flicker and costs time.
    palette = frames[-1].quantize(colors=GIF_COLOURS, method=Image.Quantize.MEDIANCUT)
    frames = [f.quantize(palette=palette, dither=Image.Dither.NONE) for f in frames]
    path.parent.mkdir(parents=True, exist_ok=True)
    durations = [GIF_FRAME_MS] * (len(frames) - 1) + [GIF_LAST_FRAME_MS]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=durations, loop=0)
    return path


# ----------------------------------------------------------------------------- divergence and speed


def divergence(pairs: list[dict], path: Path, title: str) -> Path:
    """Per same-seed pair of runs: relative L2 between the weights (left) and |D loss| / |G loss|
    differences per step (right), log y. Zeros (bit-identical values) cannot show on a log axis."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 3.8))
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
    left.set_ylabel("‖w_torch − w_tf‖ / ‖w_torch‖")
    right.set_ylabel("|loss_torch − loss_tf|")
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
        hatches = ["" if m == "compiled" else ("//" if m == "xla" else "..") for (_, m, _, _, _) in rows]
        lows = [max(v - lo, 0) if np.isfinite(lo) else 0 for (_, _, v, lo, _) in rows]
        highs = [max(hi - v, 0) if np.isfinite(hi) else 0 for (_, _, v, _, hi) in rows]
        errors = [lows, highs] if any(lows) or any(highs) else None
        drawn = ax.bar(x, heights, color=colours, edgecolor="white", yerr=errors, capsize=3)
        for bar, hatch in zip(drawn, hatches):
            bar.set_hatch(hatch)
        ax.set_xticks(x, [f"{'PT' if b == 'torch' else 'TF'}\n{m}" for (b, m, _, _, _) in rows], fontsize=8)
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
    ax.set_xticks(np.arange(len(rows)), [f"{t}\n{'PT' if b == 'torch' else 'TF'} {m}" for (t, b, m, _) in rows],
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
            label = " ".join(SHORT_NAMES.get(str(key[k]), str(key[k])) for k in group_keys)
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
