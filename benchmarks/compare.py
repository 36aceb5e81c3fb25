"""Your own GAN in both frameworks from Python (a notebook, a script): ``compare(gan, data)`` trains it exactly as
``python -m benchmarks.run --spec FILE`` does (same initial weights, same batches, the chaos floor, every mode's
timing) and returns the records the command writes to OUT/runs.jsonl.

    import numpy as np
    from benchmarks.compare import compare
    from common.spec import GAN, MLP, Loss, Optimizer

    points = np.load("points.npy")                         # (N, 2) floats
    gan = GAN(latent_dim=2, data_shape=(2,), batch_size=128,
              generator=MLP((2, 64, 64, 2), "relu", "linear"),
              discriminator=MLP((2, 64, 64, 1), "relu", "sigmoid"),
              loss=Loss("nonsaturating"), d_optimizer=Optimizer(lr=2e-4, beta1=0.5),
              g_optimizer=Optimizer(lr=2e-4, beta1=0.5))
    records = compare(gan, points, name="points", steps=500, out="results/points")

Bad input is a ValueError naming what is wrong and what is allowed (nothing written); a failed write an OSError.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from benchmarks import cli, job, plan
from benchmarks.cli import BadInput
from common import specfile
from common.spec import GAN


def compare(gan: GAN, data: np.ndarray | str | Path, *, name: str = "my-gan", steps: int = 500,
            backends: str | tuple[str, ...] = ("torch", "tf"), mode: str | None = None, num_seeds: int | None = None,
            seed: int = 0, out: str | Path = "results", report: bool = True, threads: int | None = None,
            device: str = "auto", resume: bool = False) -> list[dict]:
    """Train ``gan`` on ``data`` in each of ``backends`` and return the records of the runs it finished.

    ``data``: an array of shape (N, *gan.data_shape) in the generator's range, or the path of a .npy/.npz file or
    an image folder (common/specfile.py). ``mode`` None runs the quick plan's configurations (each framework's
    modes and optimiser implementations that say something), "all" every mode, else that one. ``steps`` per run;
    ``num_seeds`` seeds per configuration; ``report`` builds OUT/report.html at the end. ``backends``: names in any
    order (run in the registry's), or "both" or "all", as --backend takes them (ValueError otherwise).
    """
    task = specfile.task_from_gan(gan, data, name=name, steps=steps)
    request = plan.Request(backends=cli.backends_of(backends), task_object=task, steps="quick", mode=mode, seed=seed,
                           num_seeds=num_seeds, out=str(out), report=report, threads=threads, device=device,
                           resume=resume, command=("benchmarks.compare.compare", name))
    try:
        code, records = job.run(request)
    except BadInput as error:
        raise ValueError(str(error)) from None
    return records
