"""The pictures of generated samples: final samples side by side and progress GIFs over training, drawn as
scatter plots (2-D points), curves (other 1-D data) or image grids (digits, faces)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from benchmarks.report.plots import COLOURS, plt, save  # plots picks the Agg backend before pyplot loads
from common.checkpoint import atomic_write
from common.metrics import PARABOLA_X

REAL_COLOUR = "#555555"
GIF_FRAME_MS = 400
GIF_LAST_FRAME_MS = 1500
GIF_DPI = 80
GIF_CURVES = 24  # curves per GIF frame: enough to see the spread, few enough to stay light
GIF_COLOURS = 128
GRID_SIDE = 8  # 8 x 8 image grids
GRID_GAP = 2  # pixels between tiles


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
    durations = [GIF_FRAME_MS] * (len(frames) - 1) + [GIF_LAST_FRAME_MS]
    atomic_write(path, lambda f: frames[0].save(f, format="GIF", save_all=True, append_images=frames[1:],
                                                duration=durations, loop=0))
    return path
