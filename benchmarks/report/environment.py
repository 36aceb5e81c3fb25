"""The environment the runs were measured in: machine, versions, threads, commit and command."""
from __future__ import annotations

import pandas as pd

from benchmarks.report.doc import BACKEND_NAMES, Doc, fmt
from benchmarks.report.runs import by_host

PACKAGES = ("python", "numpy", "torch", "tensorflow", "keras", "jax", "flax", "optax")  # the versions the report names
# and compares


def per_backend(runs: list[dict]) -> tuple[dict, dict, dict, dict]:
    """Versions, devices, thread settings and sgemm peaks of the latest run of each backend, merged: a folder of
    one-backend runs (or two folders read together) has each framework's in a run of its own."""
    versions, devices, configure, sgemm = {}, {}, {}, {}
    for record in {r.get("backend"): r for r in runs}.values():
        env = record.get("environment", {})
        versions.update(env.get("versions", {}))
        devices.update(env.get("devices", {}))
        configure.update(env.get("configure", {}))
        sgemm.update(record.get("sgemm_gflops", {}))
    return versions, devices, configure, sgemm


def environment_section(doc: Doc, runs: list[dict]) -> None:
    doc.heading(2, "Environment")
    env = runs[-1].get("environment", {})
    versions, devices, configure, sgemm = per_backend(runs)
    git = env.get("git", {})
    rows = [
        ("date of the latest run", env.get("date", "unknown")),
        ("host", env.get("host", "unknown")),
        ("CPU", f"{env.get('cpu', 'unknown')} ({env.get('cpu_count', '?')} logical cores)"),
        ("devices", ", ".join(f"{BACKEND_NAMES.get(b, b)}: {d}" for b, d in devices.items())),
        ("platform", env.get("platform", "unknown")),
        ("versions", ", ".join(f"{k} {versions[k]}" for k in PACKAGES if k in versions)),
        ("threads (intra / inter-op; 0 = framework default)",
         "; ".join(f"{BACKEND_NAMES.get(b, b)} {s.get('intra_op_threads')} / {s.get('inter_op_threads')}"
                   for b, s in configure.items())),
        ("deterministic kernels", "; ".join(f"{BACKEND_NAMES.get(b, b)} {s.get('deterministic')}"
                                            for b, s in configure.items())),
        ("oneDNN", f"TF_ENABLE_ONEDNN_OPTS={env.get('TF_ENABLE_ONEDNN_OPTS', 'unset')}, TF oneDNN enabled: "
                   f"{versions.get('onednn_enabled', '?')}; PyTorch mkldnn: {versions.get('mkldnn', '?')}, "
                   f"CPU capability {versions.get('cpu_capability', '?')}"),
        ("matmul peak (sgemm, GFLOP/s)", ", ".join(f"{k} {fmt(v, 3)}" for k, v in sgemm.items())),
        ("git commit", f"{git.get('commit', 'unknown')}" + (" (working tree modified)" if git.get("dirty") else "")),
        ("command", "python -m benchmarks.run " + " ".join(env.get("argv", []))),
    ]
    doc.table(pd.DataFrame(rows, columns=["setting", "value"]))
    hosts = by_host(runs)
    if len(hosts) > 1:
        doc.text(f"The runs come from {len(hosts)} hosts (each run records its own environment):")
        doc.table(pd.DataFrame([host_row(host, host_runs) for host, host_runs in hosts.items()]))
    differ = differences(runs)
    if differ:
        doc.warn(f"the runs in this folder differ in {', '.join(differ)}; the table shows the latest run's (each "
                 "framework's own settings from its latest run). Compare timings only within one environment.")


def differences(runs: list[dict]) -> list[str]:
    """What differs between the runs' environments: host, CPU, commit, or the version of a package two runs both
    name (a Ray worker of one backend records that backend's versions only, which is no difference)."""
    seen = {}
    for r in runs:
        env = r.get("environment", {})
        for what, value in (("host", env.get("host")), ("CPU", env.get("cpu")),
                            ("commit", env.get("git", {}).get("commit")),
                            *((f"{name} version", env["versions"][name]) for name in PACKAGES
                              if name in env.get("versions", {}))):
            seen.setdefault(what, set()).add(value)
    return [what for what, values in seen.items() if len(values) > 1]


def host_row(host: str, runs: list[dict]) -> dict:
    env = runs[-1].get("environment", {})
    versions = env.get("versions", {})
    return {"host": host, "runs": len(runs), "CPU": f"{env.get('cpu', 'unknown')} ({env.get('cpu_count', '?')} cores)",
            "devices": ", ".join(sorted(set(env.get("devices", {}).values()))),
            "versions": ", ".join(f"{k} {versions[k]}" for k in ("torch", "tensorflow", "jax") if k in versions),
            "executor": ", ".join(sorted({r.get("executor", "local") for r in runs})),
            "timing": ", ".join(sorted({r.get("timing_mode", "exclusive") for r in runs}))}
