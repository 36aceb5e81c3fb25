"""Same-seed trajectory divergence: how far the two backends drift apart from the same start."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.report import plots
from benchmarks.report.doc import Doc, fmt, label
from benchmarks.report.runs import Histories
from common import metrics as judge

# Same-seed divergence compares like with like: torch mode -> the TensorFlow modes that do the same job.
MATCHING_MODES = {"eager": ("eager",), "compiled": ("compiled", "xla")}
DIVERGENCE_SENTENCE = (
    "Both backends start from the same weights and see the same data and noise at every step, so any gap "
    "here is floating-point rounding (other kernels, other summation orders) amplified by training: a gap "
    "that stays near float32 precision means the two trajectories are the same computation, a gap that grows "
    "steadily shows how fast the GAN dynamics amplify rounding, not a difference in what is computed.")


def divergence_pairs(runs: list[dict], histories: Histories) -> list[dict]:
    """Same-seed (torch run, tf run) pairs with the same config: weight and loss gaps over training."""
    pairs = []
    torch_runs = [r for r in runs if r["backend"] == "torch"]
    tf_runs = [r for r in runs if r["backend"] == "tf"]
    for a in torch_runs:
        for b in tf_runs:
            if a["seed"] != b["seed"] or a["config"] != b["config"] or b["mode"] not in MATCHING_MODES.get(a["mode"], ()):
                continue
            ha, hb = histories(a), histories(b)
            if ha is None or hb is None or not np.array_equal(ha["sketch_index"], hb["sketch_index"]):
                continue
            common_steps, ia, ib = np.intersect1d(ha["sketch_steps"], hb["sketch_steps"], return_indices=True)
            rel = np.array([judge.weight_distance({"w": [ha["sketch"][i]]}, {"w": [hb["sketch"][j]]})["relative_l2"]
                            for i, j in zip(ia, ib)])
            n = min(len(ha["d_loss"]), len(hb["d_loss"]))
            pairs.append({
                "label": f"{label('torch', a['mode'])} vs {label('tf', b['mode'])}, seed {a['seed']}",
                "seed": a["seed"], "sketch_steps": common_steps, "weight_rel_l2": rel,
                "d_loss_diff": np.abs(ha["d_loss"][:n] - hb["d_loss"][:n]),
                "g_loss_diff": np.abs(ha["g_loss"][:n] - hb["g_loss"][:n]),
                "sketch_size": int(ha["sketch_index"].size),
            })
    return pairs


def divergence_section(doc: Doc, by_task: dict[str, list[dict]], histories: Histories, figures: Path) -> None:
    doc.heading(2, "Same-seed trajectory divergence")
    doc.text(DIVERGENCE_SENTENCE)
    any_pair = False
    for task, runs in by_task.items():
        pairs = divergence_pairs(runs, histories)
        if not pairs:
            doc.text(f"{task}: no seed ran in both backends with the same configuration and matching modes "
                     "(eager with eager; torch.compile with tf.function or XLA).")
            continue
        any_pair = True
        path = plots.divergence(pairs, figures / f"{task}-divergence.png",
                                f"{task}: how far the two backends drift apart from the same start")
        doc.image(path, f"{task}: relative L2 distance of the weights (left; on {pairs[0]['sketch_size']} sampled "
                        "coordinates) and absolute loss differences per step (right), log scale; zero (identical) "
                        "values are not drawn; dots: per step, lines: moving average")
        doc.table(pd.DataFrame([{
            "pair": p["label"], "steps": len(p["d_loss_diff"]),
            "weights: final relative L2": fmt(p["weight_rel_l2"][-1] if len(p["weight_rel_l2"]) else math.nan, 3),
            "|ΔD loss| first step": fmt(p["d_loss_diff"][0] if len(p["d_loss_diff"]) else math.nan, 3),
            "|ΔD loss| median": fmt(np.nanmedian(p["d_loss_diff"]) if len(p["d_loss_diff"]) else math.nan, 3),
            "|ΔG loss| median": fmt(np.nanmedian(p["g_loss_diff"]) if len(p["g_loss_diff"]) else math.nan, 3),
        } for p in pairs]))
    if not any_pair:
        doc.text("Run both backends with the same seed and steps (--backend both) to see it.")
