"""The summary: per task, one sentence on speed and one on samples, prefixed by the machine."""
from __future__ import annotations

from benchmarks.report.doc import BACKEND_NAMES, BACKEND_SHORT, Doc, fmt, fmt_time, label
from benchmarks.report.runs import by_host, fastest, judged_metrics, metric_values, representatives, timed_ok
from common import metrics as judge

SUMMARY_METRICS = 3  # judged metrics quoted per task in the summary when there is one seed


def machine_phrase(env: dict) -> str:
    threads = []
    for backend, settings in env.get("configure", {}).items():
        n = settings.get("intra_op_threads")
        threads.append(f"{BACKEND_SHORT.get(backend, backend)} {n if n else 'default'} intra-op threads")
    cores = env.get("cpu_count")
    devices = set(env.get("devices", {}).values())
    where = env.get("cpu", "unknown CPU") if devices <= {"cpu"} else ", ".join(sorted(devices))
    return f"On this machine ({where}, {cores} cores; {', '.join(threads)})"


def speed_sentence(task: str, runs: list[dict]) -> str:
    """The fastest configurations compared within one host; one clause per host when the runs come from several."""
    hosts = by_host([r for r in runs if timed_ok(r)])
    if len(hosts) > 1:
        return "; ".join(f"on {host}, {host_sentence(task, host_runs)}" for host, host_runs in hosts.items())
    return host_sentence(task, runs)


def host_sentence(task: str, runs: list[dict]) -> str:
    best = {b: fastest(runs, b) for b in BACKEND_NAMES}
    best = {b: r for b, r in best.items() if r is not None}
    if not best:
        return f"no {task} run finished with timed steps"
    if len(best) == 1:
        (backend, r), = best.items()
        return f"only {label(backend, r['mode'])} ran {task} (median step {fmt_time(r['median_step_s'])})"
    fast, slow = sorted(best.values(), key=lambda r: r["median_step_s"])
    ratio = slow["median_step_s"] / fast["median_step_s"]
    return (f"{label(fast['backend'], fast['mode'])} trained {task} {ratio:.1f}x faster than "
            f"{label(slow['backend'], slow['mode'])} (median step {fmt_time(fast['median_step_s'])} vs "
            f"{fmt_time(slow['median_step_s'])})")


def sample_sentence(runs: list[dict]) -> str:
    reps = representatives(runs)
    if len(reps) < 2:
        return "one backend only: no sample comparison"
    diverged = [f"{label(r['backend'], r['mode'])} seed {r['seed']}" for rs in reps.values() for r in rs
                if r["status"] != "finished"]
    names = judged_metrics([r for rs in reps.values() for r in rs])
    if not names:
        return "no sample metrics (" + ("diverged: " + ", ".join(diverged) if diverged else "none recorded") + ")"
    seeds = min(len(rs) for rs in reps.values())
    note = f" ({', '.join(diverged)} diverged)" if diverged else ""
    if seeds < 2:
        values = "; ".join(f"{n} {fmt(metric_values(reps['torch'], n)[0], 3)} vs {fmt(metric_values(reps['tf'], n)[0], 3)}"
                           for n in names[:SUMMARY_METRICS])
        return f"one seed per backend cannot establish a sample difference; PyTorch vs TF: {values}{note}"
    verdicts = {n: judge.compare(metric_values(reps["torch"], n), metric_values(reps["tf"], n)) for n in names}
    different = [f"{n} ({v['verdict']})" for n, v in verdicts.items() if v["verdict"].startswith("different")]
    if not different:
        return (f"samples show no significant difference in any of {len(names)} metrics "
                f"(Welch's t-test, {len(reps['torch'])} vs {len(reps['tf'])} seeds){note}")
    return f"samples differ in {', '.join(different)}; no significant difference in the other {len(names) - len(different)}{note}"


def summary_section(doc: Doc, runs: list[dict], by_task: dict[str, list[dict]]) -> None:
    doc.heading(2, "Summary")
    env = runs[-1].get("environment", {})
    sentences = [f"{speed_sentence(task, rs)}; {sample_sentence(rs)}." for task, rs in by_task.items()]
    flagged = [r for r in runs if r["status"] != "finished" or r.get("flags")]
    tail = (f" {len(flagged)} of {len(runs)} runs diverged or carry flags (see below)." if flagged
            else f" All {len(runs)} runs finished without flags.")
    hosts = by_host([r for r in runs if timed_ok(r)])
    where = machine_phrase(env) if len(hosts) <= 1 else f"On {len(hosts)} hosts (speed compared within each host)"
    doc.text(f"{where}: " + " ".join(s[0].upper() + s[1:] for s in sentences) + tail)
    doc.text("Speed compares the fastest mode of each backend per task; samples compare each backend's "
             "representative mode (most seeds, then fastest).")
