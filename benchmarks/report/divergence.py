"""Same-seed trajectory divergence: how far the two backends drift apart from the same start, against the chaos
floor: a band of same-framework drifts of the same kind, each the same training computed with other summation
orders at every step (benchmarks/run.py plans three twins with their hidden units and batches in another order,
``init`` "seed+order1" to "seed+order3", common/twin.py; a framework's two modes that round differently, e.g.
tf.function and XLA, add to the band). A
cross-framework curve within the band's prediction limit is float32 chaos; one above it is a difference in what
is computed. The rule and its reasoning: common/tolerances.py."""
from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from benchmarks.report import plots
from benchmarks.report.doc import Doc, fmt, label
from benchmarks.report.faster import config_label
from benchmarks.report.runs import Histories, pack_of, pairs_of
from common import metrics as judge
from common import tolerances as tol
from common.backend import BOTH
from common.twin import TWINS

# Same-seed divergence compares like with like: a mode -> the job it does (op by op, or a compiled graph); two
# frameworks' runs pair where their modes do the same job (torch.compile with tf.function, XLA or jax.jit).
MODE_JOBS = {"eager": "eager", "compiled": "graph", "xla": "graph"}
DIVERGENCE_SENTENCE = (
    "Both backends start from the same weights and see the same data and noise at every step, so any gap "
    "here is floating-point rounding (other kernels, other summation orders) amplified by training, or a "
    "difference in what is computed. The chaos floor tells the two apart: a band of same-framework pairs that "
    "compute the very same training with other rounding at every step (twins whose hidden units and batches come "
    "in another order, so every matmul, convolution and batch sum is taken in another order; a framework's two "
    "modes where they round differently). A cross-framework curve inside the band is float32 chaos. It is flagged where it stands "
    f"above the band's {tol.FLOOR_CONFIDENCE:.1%} prediction limit: where one more run of the band's kind would "
    "lie with that probability, from the band's own centre and spread (log scale, Student's t).")


def sketch_drift(ha: dict, hb: dict) -> tuple[np.ndarray, np.ndarray] | None:
    """Relative L2 distance of two runs' weight sketches at their common sketch steps (None: other sketches)."""
    if not np.array_equal(ha["sketch_index"], hb["sketch_index"]):
        return None
    steps, ia, ib = np.intersect1d(ha["sketch_steps"], hb["sketch_steps"], return_indices=True)
    rel = np.array([judge.weight_distance({"w": [ha["sketch"][i]]}, {"w": [hb["sketch"][j]]})["relative_l2"]
                    for i, j in zip(ia, ib)])
    return steps, rel


def divergence_pairs(runs: list[dict], histories: Histories) -> list[dict]:
    """Same-seed pairs of runs with the same config, per pair of backends (runs.pairs_of: torch-tf, torch-jax,
    tf-jax): weight and loss gaps over training."""
    pairs = []
    for first, second in pairs_of(runs):
        for a, b in itertools.product([r for r in runs if r["backend"] == first],
                                      [r for r in runs if r["backend"] == second]):
            if a["seed"] != b["seed"] or a["config"] != b["config"] or \
                    MODE_JOBS.get(a["mode"], a["mode"]) != MODE_JOBS.get(b["mode"], b["mode"]):
                continue
            ha, hb = histories(a), histories(b)
            drift = None if ha is None or hb is None else sketch_drift(ha, hb)
            if drift is None:
                continue
            n = min(len(ha["d_loss"]), len(hb["d_loss"]))
            pairs.append({
                "label": f"{config_label(a)} vs {config_label(b)}, seed {a['seed']}",  # spec and native apart
                "backends": (first, second),
                "seed": a["seed"], "pack": pack_of(a), "sketch_steps": drift[0], "weight_rel_l2": drift[1],
                "d_loss_diff": np.abs(ha["d_loss"][:n] - hb["d_loss"][:n]),
                "g_loss_diff": np.abs(ha["g_loss"][:n] - hb["g_loss"][:n]),
                # parity at step 1 (same weights, same batch): the float32 bound of the parity tests
                "step1_bound": tol.loss_bound(float(ha["d_loss"][0])) if n else math.nan,
                "sketch_size": int(ha["sketch_index"].size),
            })
    return pairs


def floor_band(runs: list[dict], floors: list[dict], histories: Histories) -> dict[tuple[int, int], list[dict]]:
    """(seed, pack) -> the band's curves (another pack is another GAN): each order twin against its own run (same
    backend, mode, seed, config), and each backend's pairs of modes of one seed and config whose weights part
    (modes that compute bit for bit alike, e.g. TF eager and tf.function, add nothing). Floors of the older
    one-ulp kind are not of the same kind (one perturbation at step 0, of another size) and are left out."""
    out: dict[tuple[int, int], list[dict]] = {}

    def add(a: dict, b: dict, text: str) -> None:
        ha, hb = histories(a), histories(b)
        drift = None if ha is None or hb is None else sketch_drift(ha, hb)
        if drift is not None and np.nanmax(drift[1], initial=0.0) > 0:
            out.setdefault((b["seed"], pack_of(b)), []).append(
                {"label": f"{text}, seed {b['seed']}", "sketch_steps": drift[0], "weight_rel_l2": drift[1]})

    for f in floors:
        if f.get("init") not in TWINS:
            continue
        twins = [r for r in runs if (r["backend"], r["mode"], r["seed"], r["config"]) ==
                 (f["backend"], f["mode"], f["seed"], f["config"])]
        if twins:
            add(twins[0], f, f"{label(f['backend'], f['mode'])} vs itself, batches reordered "
                             f"({f['init'].split('+')[1]})")
    for a, b in itertools.combinations(runs, 2):
        if (a["backend"], a["seed"], a["config"]) == (b["backend"], b["seed"], b["config"]) and a["mode"] != b["mode"]:
            add(a, b, f"{label(a['backend'], a['mode'])} vs {label(b['backend'], b['mode'])}")
    return out


NO_VERDICT = {"max_ratio": math.nan, "at_step": None, "within": None, "limit": math.nan, "excess": math.nan}


def against_floor(pair: dict, band: list[dict]) -> dict:
    """The cross-framework curve against the band at their common snapshots after step 0. Where two or more band
    curves have a value, their logs give a centre m and spread s, and one more run of the same kind lies below
    m + t s sqrt(1 + 1/n) with probability FLOOR_CONFIDENCE (Student's prediction interval, t its quantile with
    n - 1 degrees of freedom). Returns the largest ratio of the cross curve to the band's centre, where it is, the
    limit there (exp of t s sqrt(1 + 1/n)), the log of the ratio over the limit there (``excess``, <= 0 within) and
    whether every snapshot stays within its limit; no verdict where no snapshot has two curves with a spread."""
    values: dict[int, list[float]] = {}
    for curve in band:
        for step, value in zip(curve["sketch_steps"], curve["weight_rel_l2"]):
            if step > 0 and np.isfinite(value) and value > 0:
                values.setdefault(int(step), []).append(float(value))
    judged = []  # (log excess over the limit, ratio to the centre, limit, step)
    for step, cross in zip(pair["sketch_steps"], pair["weight_rel_l2"]):
        logs = np.log(values.get(int(step), []))
        if len(logs) < 2 or not np.isfinite(cross) or logs.std() == 0:
            continue
        n, centre = len(logs), logs.mean()
        width = stats.t.ppf(tol.FLOOR_CONFIDENCE, n - 1) * logs.std(ddof=1) * math.sqrt(1 + 1 / n)
        ratio = float(cross) / math.exp(centre)
        judged.append((math.log(max(ratio, 1e-300)) - width, ratio, math.exp(width), int(step)))
    if not judged:
        return NO_VERDICT
    excess, ratio, limit, step = max(judged)
    return {"max_ratio": ratio, "at_step": step, "within": bool(excess <= 0), "limit": limit, "excess": excess}


def task_drift(runs: list[dict], floors: list[dict], histories: Histories) -> dict:
    """Everything the section and the summary say about one task: the pairs, their floor bands and verdicts."""
    pairs = divergence_pairs(runs, histories)
    bands = floor_band(runs, floors, histories)
    rows = []
    for p in pairs:
        band = bands.get((p["seed"], p["pack"]), [])
        rows.append({"pair": p, "band": band, **(against_floor(p, band) if band else NO_VERDICT)})
    return {"pairs": pairs, "floors": bands, "rows": rows,
            "ulp_floors_only": bool(floors) and not any(f.get("init") in TWINS for f in floors)}


def model_verdict(drift: dict, pair: tuple[str, str] = BOTH) -> str:
    """One plain phrase for the summary's "same model?" column: the same-seed pairs of runs of ``pair``'s backends."""
    pairs = [p for p in drift["pairs"] if p["backends"] == pair]
    rows = [r for r in drift["rows"] if r["pair"]["backends"] == pair]
    if not pairs:
        return "no same-seed pair of the two frameworks"
    off = [p for p in pairs if len(p["d_loss_diff"]) and not p["d_loss_diff"][0] <= p["step1_bound"]]
    if off:
        return (f"no: step-1 D losses differ by {off[0]['d_loss_diff'][0]:.2g} (float32 bound "
                f"{off[0]['step1_bound']:.2g}), {off[0]['label']}")
    judged = [r for r in rows if r["within"] is not None]
    if not judged:
        if any(r["band"] for r in rows):
            return "drift measured, a floor band of one curve: no spread to judge by (run two modes or the floor twins)"
        if drift.get("ulp_floors_only"):
            return "drift measured; its floor is the older one-ulp kind, not like for like (run again with --backend both)"
        return "drift measured, no chaos floor run (run with --backend both)"
    worst = max(judged, key=lambda r: r["excess"])
    if all(r["within"] for r in judged):
        return (f"yes: drift at most {worst['max_ratio']:.2g}x the floor band's centre, within its "
                f"{tol.FLOOR_CONFIDENCE:.1%} limit ({worst['limit']:.2g}x there)")
    return (f"no: drift {worst['max_ratio']:.2g}x the floor band's centre at step {worst['at_step']}, beyond its "
            f"{tol.FLOOR_CONFIDENCE:.1%} limit ({worst['limit']:.2g}x)")


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
                     "(eager with eager; a graph mode with a graph mode: torch.compile, tf.function, XLA, jax.jit).")
            continue
        any_pair = True
        path = plots.divergence(pairs, figures / f"{task}-divergence.png",
                                f"{task}: how far the backends drift apart from the same start",
                                floors=[curve for band in drift["floors"].values() for curve in band])
        doc.image(path, f"{task}: relative L2 distance of the weights (left; on {pairs[0]['sketch_size']} sampled "
                        "coordinates; grey dashed: the chaos floor's band, same-framework pairs with other rounding) "
                        "and absolute loss differences per step (right), log scale; zero (identical) values are "
                        "not drawn; dots: per step, lines: moving average")
        doc.table(pd.DataFrame([{
            "pair": r["pair"]["label"], "steps": len(r["pair"]["d_loss_diff"]),
            "weights: final relative L2": fmt(r["pair"]["weight_rel_l2"][-1] if len(r["pair"]["weight_rel_l2"]) else math.nan, 3),
            "chaos floor": "; ".join(c["label"] for c in r["band"]) if r["band"] else "no floor run",
            "band: final relative L2": (fmt(max(c["weight_rel_l2"][-1] for c in r["band"]), 3) if r["band"]
                                        else "—"),
            "largest ratio to the band's centre": (f"{fmt(r['max_ratio'], 3)} (step {r['at_step']})"
                                                   if r["at_step"] is not None else "—"),
            "limit there": fmt(r["limit"], 3),
            "verdict": ("—" if r["within"] is None else "within the floor" if r["within"]
                        else "BEYOND the floor: investigate"),
            "|ΔD loss| first step": fmt(r["pair"]["d_loss_diff"][0] if len(r["pair"]["d_loss_diff"]) else math.nan, 3),
            "|ΔG loss| median": fmt(np.nanmedian(r["pair"]["g_loss_diff"]) if len(r["pair"]["g_loss_diff"]) else math.nan, 3),
        } for r in drift["rows"]]))
        for r in drift["rows"]:
            if r["within"] is False:
                doc.warn(f"{task}, {r['pair']['label']}: the frameworks drift {r['max_ratio']:.3g}x the floor band's "
                         f"centre at step {r['at_step']}, beyond its limit ({r['limit']:.3g}x): a difference in what "
                         "is computed, to investigate.")
    if not any_pair:
        doc.text("Run both backends with the same seed and steps (--backend both) to see it.")
