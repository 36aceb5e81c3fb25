"""Same-seed trajectory divergence: how far the two backends drift apart from the same start, against the chaos
floor: the same framework run twice from initial weights one ulp apart (benchmarks/run.py plans those runs, with
``init == "seed+ulp"``). A cross-framework curve that stays within the floor is float32 chaos; one above it is a
difference in what is computed, to investigate. The limit and its reasoning: common/tolerances.py."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.report import plots
from benchmarks.report.doc import Doc, fmt, label
from benchmarks.report.runs import Histories, pack_of
from common import metrics as judge
from common import tolerances as tol

# Same-seed divergence compares like with like: torch mode -> the TensorFlow modes that do the same job.
MATCHING_MODES = {"eager": ("eager",), "compiled": ("compiled", "xla")}
DIVERGENCE_SENTENCE = (
    "Both backends start from the same weights and see the same data and noise at every step, so any gap "
    "here is floating-point rounding (other kernels, other summation orders) amplified by training, or a "
    "difference in what is computed. The chaos floor tells the two apart: the same framework run again from "
    "initial weights one ulp away (np.nextafter on every weight), same data and noise, drifts by rounding "
    "alone. A cross-framework curve at or below the floor is float32 chaos; one above it by more than "
    f"{tol.FLOOR_RATIO_LIMIT:g}x at any snapshot is flagged.")


def sketch_drift(ha: dict, hb: dict) -> tuple[np.ndarray, np.ndarray] | None:
    """Relative L2 distance of two runs' weight sketches at their common sketch steps (None: other sketches)."""
    if not np.array_equal(ha["sketch_index"], hb["sketch_index"]):
        return None
    steps, ia, ib = np.intersect1d(ha["sketch_steps"], hb["sketch_steps"], return_indices=True)
    rel = np.array([judge.weight_distance({"w": [ha["sketch"][i]]}, {"w": [hb["sketch"][j]]})["relative_l2"]
                    for i, j in zip(ia, ib)])
    return steps, rel


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
            drift = None if ha is None or hb is None else sketch_drift(ha, hb)
            if drift is None:
                continue
            n = min(len(ha["d_loss"]), len(hb["d_loss"]))
            pairs.append({
                "label": f"{label('torch', a['mode'])} vs {label('tf', b['mode'])}, seed {a['seed']}",
                "seed": a["seed"], "pack": pack_of(a), "sketch_steps": drift[0], "weight_rel_l2": drift[1],
                "d_loss_diff": np.abs(ha["d_loss"][:n] - hb["d_loss"][:n]),
                "g_loss_diff": np.abs(ha["g_loss"][:n] - hb["g_loss"][:n]),
                # parity at step 1 (same weights, same batch): the float32 bound of the parity tests
                "step1_bound": tol.loss_bound(float(ha["d_loss"][0])) if n else math.nan,
                "sketch_size": int(ha["sketch_index"].size),
            })
    return pairs


def floor_pairs(runs: list[dict], floors: list[dict], histories: Histories) -> dict[tuple[int, int], dict]:
    """(seed, pack) -> the floor of that seed and pack (another pack is another GAN): a floor run against its twin
    (same backend, mode, seed, config)."""
    out = {}
    for f in floors:
        twins = [r for r in runs if (r["backend"], r["mode"], r["seed"], r["config"]) ==
                 (f["backend"], f["mode"], f["seed"], f["config"])]
        hf, ht = histories(f), histories(twins[0]) if twins else None
        drift = None if hf is None or ht is None else sketch_drift(ht, hf)
        if drift is not None:
            out[f["seed"], pack_of(f)] = {"label": f"{label(f['backend'], f['mode'])} vs itself from weights +1 ulp, seed "
                                       f"{f['seed']}", "sketch_steps": drift[0], "weight_rel_l2": drift[1]}
    return out


def against_floor(pair: dict, floor: dict) -> dict:
    """The cross-framework curve divided by the floor's at their common snapshots after step 0: the largest ratio,
    where it is, and whether it stays within FLOOR_RATIO_LIMIT."""
    steps, i, j = np.intersect1d(pair["sketch_steps"], floor["sketch_steps"], return_indices=True)
    cross, base = pair["weight_rel_l2"][i], floor["weight_rel_l2"][j]
    keep = (steps > 0) & (base > 0) & np.isfinite(cross) & np.isfinite(base)
    # Where the floor has not yet left its one-ulp start, a ratio compares that start with a step's amplified
    # rounding (the parity tests' domain, not the floor's): judged from the first snapshot where it has grown
    # FLOOR_GROWTH-fold, when it ever does
    start = base[steps == 0]
    if len(start) and start[0] > 0:
        grown = keep & (base >= tol.FLOOR_GROWTH * start[0])
        if grown.any():
            keep = grown
    if not keep.any():
        return {"max_ratio": math.nan, "at_step": None, "within": None}
    ratios = cross[keep] / base[keep]
    worst = int(np.argmax(ratios))
    return {"max_ratio": float(ratios[worst]), "at_step": int(steps[keep][worst]),
            "within": bool(ratios[worst] <= tol.FLOOR_RATIO_LIMIT)}


def task_drift(runs: list[dict], floors: list[dict], histories: Histories) -> dict:
    """Everything the section and the summary say about one task: the pairs, their floors and verdicts."""
    pairs = divergence_pairs(runs, histories)
    by_seed = floor_pairs(runs, floors, histories)
    rows = []
    for p in pairs:
        floor = by_seed.get((p["seed"], p["pack"]))
        rows.append({"pair": p, "floor": floor, **(against_floor(p, floor) if floor else
                                                   {"max_ratio": math.nan, "at_step": None, "within": None})})
    return {"pairs": pairs, "floors": by_seed, "rows": rows}


def model_verdict(drift: dict) -> str:
    """One plain phrase for the summary's "same model?" column."""
    if not drift["pairs"]:
        return "no same-seed pair of the two frameworks"
    off = [p for p in drift["pairs"] if len(p["d_loss_diff"]) and not p["d_loss_diff"][0] <= p["step1_bound"]]
    if off:
        return (f"no: step-1 D losses differ by {off[0]['d_loss_diff'][0]:.2g} (float32 bound "
                f"{off[0]['step1_bound']:.2g}), {off[0]['label']}")
    judged = [r for r in drift["rows"] if r["within"] is not None]
    if not judged:
        return "drift measured, no chaos floor run (run with --backend both)"
    worst = max(judged, key=lambda r: r["max_ratio"])
    if all(r["within"] for r in judged):
        return (f"yes: drift at most {worst['max_ratio']:.2g}x the one-ulp chaos floor (limit "
                f"{tol.FLOOR_RATIO_LIMIT:g}x)")
    return f"investigate: drift {worst['max_ratio']:.2g}x the chaos floor at step {worst['at_step']}"


def divergence_section(doc: Doc, by_task: dict[str, list[dict]], drifts: dict[str, dict], figures: Path) -> None:
    doc.heading(2, "Same-seed trajectory divergence")
    doc.text(DIVERGENCE_SENTENCE)
    any_pair = False
    for task, runs in by_task.items():
        doc.heading(3, task, anchor=f"drift-{task}")
        drift = drifts[task]
        pairs = drift["pairs"]
        if not pairs:
            doc.text(f"{task}: no seed ran in both backends with the same configuration and matching modes "
                     "(eager with eager; torch.compile with tf.function or XLA).")
            continue
        any_pair = True
        path = plots.divergence(pairs, figures / f"{task}-divergence.png",
                                f"{task}: how far the two backends drift apart from the same start",
                                floors=list(drift["floors"].values()))
        doc.image(path, f"{task}: relative L2 distance of the weights (left; on {pairs[0]['sketch_size']} sampled "
                        "coordinates; grey dashed: the chaos floor, the same framework from weights one ulp away) "
                        "and absolute loss differences per step (right), log scale; zero (identical) values are "
                        "not drawn; dots: per step, lines: moving average")
        doc.table(pd.DataFrame([{
            "pair": r["pair"]["label"], "steps": len(r["pair"]["d_loss_diff"]),
            "weights: final relative L2": fmt(r["pair"]["weight_rel_l2"][-1] if len(r["pair"]["weight_rel_l2"]) else math.nan, 3),
            "chaos floor": r["floor"]["label"] if r["floor"] else "no floor run",
            "floor: final relative L2": fmt(r["floor"]["weight_rel_l2"][-1], 3) if r["floor"] else "—",
            "largest ratio to the floor": (f"{fmt(r['max_ratio'], 3)} (step {r['at_step']})" if r["at_step"] is not None
                                           else "—"),
            "verdict": ("—" if r["within"] is None else "within the floor" if r["within"]
                        else f"BEYOND the floor (> {tol.FLOOR_RATIO_LIMIT:g}x): investigate"),
            "|ΔD loss| first step": fmt(r["pair"]["d_loss_diff"][0] if len(r["pair"]["d_loss_diff"]) else math.nan, 3),
            "|ΔG loss| median": fmt(np.nanmedian(r["pair"]["g_loss_diff"]) if len(r["pair"]["g_loss_diff"]) else math.nan, 3),
        } for r in drift["rows"]]))
        for r in drift["rows"]:
            if r["within"] is False:
                doc.warn(f"{task}, {r['pair']['label']}: the frameworks drift apart {r['max_ratio']:.3g}x faster "
                         f"than the chaos floor at step {r['at_step']}: a semantic difference to investigate.")
    if not any_pair:
        doc.text("Run both backends with the same seed and steps (--backend both) to see it.")
