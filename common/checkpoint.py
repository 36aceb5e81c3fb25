"""How the suite writes files: the one atomic writer, and the trainer-state (checkpoint) file layout.

Every file the suite writes (results, histories, checkpoints, sweeps, reports) goes through ``atomic_write``: a
temp file in the same folder, fsync, ``os.replace`` with SIGINT/SIGTERM held, then an fsync of the folder. A
reader sees the old file or the new one, never half of one, whatever interrupts the writer. Every file gets the
same permissions: 0666 less the user's umask, like any file the user creates (mkstemp alone would give 0600).

A trainer's state (``Trainer.state()``) is a flat dict of numpy arrays in the neutral layout:

    generator/<i>, discriminator/<i>          weights, common.init's layout (layer by layer: kernels (in, out) or
                                              (kh, kw, in, out), then biases; BatchNorm gamma, beta)
    stats/<network>/<i>                       float32 BatchNorm running statistics: mean, variance per BatchNorm
                                              layer, in layer order (none for networks without BatchNorm)
    opt/<network>/t                           int64: updates that optimiser has applied
    opt/<network>/<moment>/<i>                float32, same layout as the weights: m and v (Adam), v (RMSprop)

A checkpoint file is that dict plus ``spec`` (the GAN spec as JSON), saved with ``np.savez``. It fits a trainer
when the fields that fix the shapes (CHECKPOINT_FIELDS) and both optimisers' names agree.
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import tempfile
from pathlib import Path

import numpy as np

from common.spec import GAN

NETWORKS = ("generator", "discriminator")
# Fields that fix the shapes of the weights and of the optimiser state: a checkpoint must match them.
CHECKPOINT_FIELDS = ("latent_dim", "data_shape", "generator", "discriminator")
OPTIMIZER_FIELDS = ("g_optimizer", "d_optimizer")

_UMASK = os.umask(0o022)
os.umask(_UMASK)  # read once (os.umask can only be read by setting it)


@contextlib.contextmanager
def signals_deferred():
    """Hold SIGINT/SIGTERM while a file is being replaced; they are delivered right after."""
    blocked = {signal.SIGINT, signal.SIGTERM}
    old = signal.pthread_sigmask(signal.SIG_BLOCK, blocked)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def atomic_write(path, write) -> None:
    """Call ``write(binary_file)`` on a temp file next to ``path``, fsync it, then os.replace it onto ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        with signals_deferred():
            os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def numbered(arrays: dict, prefix: str) -> list[np.ndarray]:
    """arrays[prefix + "0"], arrays[prefix + "1"], ... for as long as they exist."""
    values = []
    while f"{prefix}{len(values)}" in arrays:
        values.append(arrays[f"{prefix}{len(values)}"])
    return values


def state_arrays(spec: GAN, state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A trainer state with its spec, as the arrays of a checkpoint file."""
    return {"spec": np.array(json.dumps(spec.to_dict(), sort_keys=True)), **state}


def check_fits(spec: GAN, arrays: dict[str, np.ndarray], where) -> dict[str, np.ndarray]:
    """The trainer state in ``arrays`` (a checkpoint's), or ValueError naming ``where`` if it does not fit ``spec``."""
    saved = json.loads(str(arrays["spec"]))
    mine = json.loads(json.dumps(spec.to_dict()))
    mismatches = [f"{field}: checkpoint {saved.get(field)!r}, this trainer {mine[field]!r}"
                  for field in CHECKPOINT_FIELDS if saved.get(field) != mine[field]]
    for field in OPTIMIZER_FIELDS:
        if saved[field]["name"] != mine[field]["name"]:
            mismatches.append(f"{field}.name: checkpoint {saved[field]['name']!r}, this trainer {mine[field]['name']!r}")
    if mismatches:
        raise ValueError(f"checkpoint {where} does not fit this GAN: " + "; ".join(mismatches))
    return {key: value for key, value in arrays.items() if key != "spec"}


def save(path, spec: GAN, state: dict[str, np.ndarray]) -> None:
    """Write a checkpoint file (atomically)."""
    arrays = state_arrays(spec, state)
    atomic_write(path, lambda f: np.savez(f, **arrays))


def load(path, spec: GAN) -> dict[str, np.ndarray]:
    """The trainer state of a checkpoint file, checked against ``spec``."""
    with np.load(path, allow_pickle=False) as data:
        arrays = {key: data[key] for key in data.files}
    return check_fits(spec, arrays, path)
