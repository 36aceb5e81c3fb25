"""The environment the runs were measured in: machine, versions, threads, commit and command."""
from __future__ import annotations

import pandas as pd

from benchmarks.report.doc import BACKEND_NAMES, Doc, fmt


def environment_section(doc: Doc, runs: list[dict]) -> None:
    doc.heading(2, "Environment")
    env, record = runs[-1].get("environment", {}), runs[-1]
    versions = env.get("versions", {})
    configure = env.get("configure", {})
    git = env.get("git", {})
    rows = [
        ("date of the latest run", env.get("date", "unknown")),
        ("CPU", f"{env.get('cpu', 'unknown')} ({env.get('cpu_count', '?')} logical cores)"),
        ("devices", ", ".join(f"{BACKEND_NAMES.get(b, b)}: {d}" for b, d in env.get("devices", {}).items())),
        ("platform", env.get("platform", "unknown")),
        ("versions", ", ".join(f"{k} {versions[k]}" for k in ("python", "numpy", "torch", "tensorflow", "keras")
                               if k in versions)),
        ("threads (intra / inter-op; 0 = framework default)",
         "; ".join(f"{BACKEND_NAMES.get(b, b)} {s.get('intra_op_threads')} / {s.get('inter_op_threads')}"
                   for b, s in configure.items())),
        ("deterministic kernels", "; ".join(f"{BACKEND_NAMES.get(b, b)} {s.get('deterministic')}"
                                            for b, s in configure.items())),
        ("oneDNN", f"TF_ENABLE_ONEDNN_OPTS={env.get('TF_ENABLE_ONEDNN_OPTS', 'unset')}, TF oneDNN enabled: "
                   f"{versions.get('onednn_enabled', '?')}; PyTorch mkldnn: {versions.get('mkldnn', '?')}, "
                   f"CPU capability {versions.get('cpu_capability', '?')}"),
        ("matmul peak (sgemm, GFLOP/s)", ", ".join(f"{k} {fmt(v, 3)}" for k, v in record.get("sgemm_gflops", {}).items())),
        ("git commit", f"{git.get('commit', 'unknown')}" + (" (working tree modified)" if git.get("dirty") else "")),
        ("command", "python -m benchmarks.run " + " ".join(env.get("argv", []))),
    ]
    doc.table(pd.DataFrame(rows, columns=["setting", "value"]))
    fingerprints = {(r.get("environment", {}).get("cpu"), str(r.get("environment", {}).get("versions")),
                     r.get("environment", {}).get("git", {}).get("commit")) for r in runs}
    if len(fingerprints) > 1:
        doc.warn(f"the runs in this folder come from {len(fingerprints)} different environments (CPU, versions "
                 "or commit); the table shows the latest. Compare timings only within one environment.")
