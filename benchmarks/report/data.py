"""Where each task's data came from, and how good the digit judge is."""
from __future__ import annotations

import pandas as pd

from benchmarks.report.doc import Doc, fmt


def data_section(doc: Doc, by_task: dict[str, list[dict]]) -> None:
    doc.heading(2, "Data")
    rows, notices, accuracy = [], [], None
    for task, runs in by_task.items():
        data = runs[-1].get("data", {})
        rows.append({"task": task, "source": data.get("source", "unknown"),
                     "examples": fmt(data.get("n_examples")) if data.get("n_examples") else "sampler (infinite)"})
        if data.get("notice"):
            notices.append(f"{task}: {data['notice']}")
        for r in runs:
            accuracy = r.get("metrics", {}).get("classifier_accuracy", accuracy)
    doc.table(pd.DataFrame(rows))
    for notice in notices:
        doc.warn(notice)
    if accuracy is not None:
        from common import digits
        doc.text(f"Digit judge: an MLP classifier trained on {digits.DATA_SOURCE}; its accuracy on held-out real "
                 f"digits is {accuracy:.1%} ({digits.SPLIT_DESCRIPTION}). Fréchet distance, KID and digits "
                 "covered are measured on its features and predictions.")
