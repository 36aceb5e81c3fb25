"""How the suite writes and reads its files: the one atomic writer, the one .npz reader, holding signals, and the
trainer-state (checkpoint) file layout.

Every file the suite writes (results, histories, checkpoints, sweeps, reports, figures, caches) goes through
``atomic_write``: a temp file in the same folder, fsync, ``os.replace``, then an fsync of the folder. A reader
sees the old file or the new one, never half of one, whatever interrupts the writer; the temp file is removed
whatever exception lands at whatever point (it is created, and its name recorded, with SIGINT/SIGTERM held), so
only a SIGKILL or a power cut can leave one behind (``is_temp_file`` names them for the sweep of
benchmarks/store.py). Every file gets the same permissions: 0666 less the user's umask, like any file the user
creates (mkstemp alone would give 0600). Every .npz the suite reads goes through ``load_npz``: never unpickled,
every array read at once, and any damage one ValueError that names the file.

A trainer's state (``Trainer.state()``) is a flat dict of numpy arrays in the neutral layout (``layout(spec)``):

    generator/<i>, discriminator/<i>          weights, common.init's layout (layer by layer: kernels (in, out) or
                                              (kh, kw, in, out), then biases; BatchNorm gamma, beta)
    stats/<network>/<i>                       float32 BatchNorm running statistics: mean, variance per BatchNorm
                                              layer, in layer order (none for networks without BatchNorm)
    opt/<network>/t                           int64: updates that optimiser has applied
    opt/<network>/<moment>/<i>                float32, same layout as the weights: m and v (Adam), v (RMSprop)

A checkpoint file is that dict plus ``spec`` (the GAN spec as JSON), saved with ``np.savez``. It fits a trainer
when the fields that fix the shapes (CHECKPOINT_FIELDS) and both optimisers' names agree, and its arrays are
exactly the keys, shapes and kinds of ``layout(spec)``.
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import tempfile
import threading
from pathlib import Path

import numpy as np

from common.init import init_weights
from common.spec import GAN

NETWORKS = ("generator", "discriminator")
# Fields that fix the shapes of the weights and of the optimiser state: a checkpoint must match them.
CHECKPOINT_FIELDS = ("latent_dim", "data_shape", "generator", "discriminator")
OPTIMIZER_FIELDS = ("g_optimizer", "d_optimizer")
MOMENTS = {"adam": ("m", "v"), "rmsprop": ("v",)}  # an optimiser's moments in the state, per weight
HELD_SIGNALS = (signal.SIGINT, signal.SIGTERM)
# atomic_write's temp files are ".<name>.<random>.gan-parity.tmp" next to their target: a suffix of the suite's own,
# so that a user's ".something.tmp" is never taken for one and swept away
TEMP_SUFFIX = ".gan-parity.tmp"

_UMASK = os.umask(0o022)
os.umask(_UMASK)  # read once (os.umask can only be read by setting it)
FILE_MODE = 0o666 & ~_UMASK


@contextlib.contextmanager
def signals_deferred():
    """Hold SIGINT/SIGTERM for the block; one that arrives meanwhile is delivered right after it.

    In the main thread the block runs under a handler that only notes the signal; at the end the previous handlers
    are put back and each noted signal is raised again for them (so SIGTERM's default still ends the process, just
    after the block). Masking with pthread_sigmask alone is not enough: the kernel hands a process-wide signal to
    any thread that does not mask it (torch's and TF's pools), and Python then runs its handler in the main thread
    all the same. Other threads cannot set handlers: there the block masks the signals for the calling thread."""
    if threading.current_thread() is not threading.main_thread():
        old = signal.pthread_sigmask(signal.SIG_BLOCK, HELD_SIGNALS)
        try:
            yield
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)
        return
    noted, previous = [], {}
    try:
        for sig in HELD_SIGNALS:
            handler = signal.getsignal(sig)
            if handler is not None:  # None: a handler set outside Python, which cannot be put back
                previous[sig] = signal.signal(sig, lambda signum, frame: noted.append(signum))
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for signum in noted:
            signal.raise_signal(signum)


def check_text_path(path, what: str) -> None:
    """ValueError unless ``path``, made absolute (the working folder is part of it), is UTF-8 text. A POSIX path is
    bytes, and a name that is not UTF-8 reaches Python as lone surrogates, which no UTF-8 file can hold: the suite
    writes the paths it is given into its records, CSV, report and messages, so it refuses such a path up front,
    before anything is read or written, naming ``what`` (the flag or the folder) and the path's bytes."""
    raw = os.fsencode(os.path.abspath(path))
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(f"{what} '{shown_path(raw)}' is not UTF-8 text (byte {raw[error.start]:#04x}); allowed: a "
                         "path whose names are UTF-8 (rename or link it)") from None


def shown_path(path) -> str:
    """A path as printable text whatever its bytes: a byte that is not UTF-8 as \\xNN."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def is_temp_file(path) -> bool:
    """Whether ``path`` is named like atomic_write's temp files (left behind only by a SIGKILL or a power cut)."""
    name = Path(path).name
    return name.startswith(".") and name.endswith(TEMP_SUFFIX)


def _fsync_path(path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path, write, *, by_path: bool = False) -> None:
    """Call ``write(binary_file)`` on a temp file next to ``path`` (``write(temp_path)`` with ``by_path``, for
    writers that open the file themselves, e.g. a memory map), fsync it, then os.replace it onto ``path``.

    An OSError names ``path`` (np.savez's writes on a file object carry no file name of their own)."""
    path = Path(path)
    tmp = file = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with signals_deferred():  # an interrupt cannot land between creating the temp file and knowing its name
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
            file = os.fdopen(fd, "wb")
        os.chmod(tmp, FILE_MODE)
        if by_path:
            file.close()
            write(tmp)
            _fsync_path(tmp)
        else:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        file.close()
        with signals_deferred():
            os.replace(tmp, path)
            tmp = None
    except OSError as error:
        if error.errno is not None and error.filename is None:
            raise OSError(error.errno, error.strerror, str(path)) from error
        raise
    finally:
        with signals_deferred():
            if file is not None:
                with contextlib.suppress(OSError):  # a full disk fails the close's flush again: already raised
                    file.close()
            if tmp is not None:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
    with contextlib.suppress(OSError):  # the data are in place; a folder some file systems cannot fsync is fine
        _fsync_path(path.parent)


def load_npz(path) -> dict[str, np.ndarray]:
    """Every array of the .npz at ``path``, read now, so that a damaged member fails here and not later; never
    unpickled. Missing, unreadable or damaged: one ValueError naming the file."""
    try:
        data = np.load(path, allow_pickle=False)
        if not isinstance(data, np.lib.npyio.NpzFile):
            raise ValueError("it holds one .npy array, not an .npz archive")
        with data:
            return {key: data[key] for key in data.files}
    except Exception as error:
        # Parsing damaged bytes raises many kinds: fuzzing truncated and bit-flipped archives gave BadZipFile,
        # zlib.error, ValueError, EOFError, NotImplementedError, RuntimeError and tokenize.TokenError, and an absurd
        # header can raise MemoryError. Every one means the same thing here: the file is not a usable .npz.
        raise ValueError(f"{path}: not a readable .npz file ({type(error).__name__}: {error})") from error


def numbered(arrays: dict, prefix: str) -> list[np.ndarray]:
    """arrays[prefix + "0"], arrays[prefix + "1"], ... for as long as they exist."""
    values = []
    while f"{prefix}{len(values)}" in arrays:
        values.append(arrays[f"{prefix}{len(values)}"])
    return values


def layout(spec: GAN) -> dict[str, tuple[tuple[int, ...], str]]:
    """The state of a trainer of ``spec``: key -> (shape, numpy kind: "f" float, "i" integer)."""
    weights = init_weights(spec, 0)  # the one place that knows the weights' shapes for a spec
    keys = {}
    for network, optimizer in zip(NETWORKS, (spec.g_optimizer, spec.d_optimizer)):
        for i, weight in enumerate(weights[network]):
            keys[f"{network}/{i}"] = (weight.shape, "f")
            for moment in MOMENTS[optimizer.name]:
                keys[f"opt/{network}/{moment}/{i}"] = (weight.shape, "f")
        keys[f"opt/{network}/t"] = ((), "i")
        net = spec.generator_network if network == "generator" else spec.discriminator_network
        for i, (_, shape) in enumerate(net.statistics()):
            keys[f"stats/{network}/{i}"] = (shape, "f")
    return keys


def state_arrays(spec: GAN, state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A trainer state with its spec, as the arrays of a checkpoint file."""
    return {"spec": np.array(json.dumps(spec.to_dict(), sort_keys=True)), **state}


def check_fits(spec: GAN, arrays: dict[str, np.ndarray], where) -> dict[str, np.ndarray]:
    """The trainer state in ``arrays`` (a checkpoint's), or ValueError naming ``where`` if it does not fit ``spec``:
    its spec's shape-fixing fields and optimiser names, then every array's key, shape and kind."""
    try:
        saved = json.loads(str(arrays["spec"]))
        names = {field: saved[field]["name"] for field in OPTIMIZER_FIELDS}
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"checkpoint {where} has no readable spec ({type(error).__name__}: {error}); delete it") from None
    mine = json.loads(json.dumps(spec.to_dict()))
    mismatches = [f"{field}: checkpoint {saved.get(field)!r}, this trainer {mine[field]!r}"
                  for field in CHECKPOINT_FIELDS if saved.get(field) != mine[field]]
    for field in OPTIMIZER_FIELDS:
        if names[field] != mine[field]["name"]:
            mismatches.append(f"{field}.name: checkpoint {names[field]!r}, this trainer {mine[field]['name']!r}")
    if not mismatches:
        state = {key: value for key, value in arrays.items() if key != "spec"}
        expected = layout(spec)
        for key in sorted(set(expected) - set(state))[:3]:
            mismatches.append(f"{key} is missing")
        for key in sorted(set(state) - set(expected))[:3]:
            mismatches.append(f"{key} is not part of the state")
        for key in sorted(set(expected) & set(state)):
            shape, kind = expected[key]
            if state[key].shape != shape or state[key].dtype.kind != kind:
                mismatches.append(f"{key}: {state[key].dtype} {state[key].shape}, expected {shape} "
                                  f"{'floats' if kind == 'f' else 'integers'}")
    if mismatches:
        raise ValueError(f"checkpoint {where} does not fit this GAN: " + "; ".join(mismatches[:5]))
    return state


def state_problem(spec: GAN, state: dict[str, np.ndarray], steps_done: int, weight_limit: float) -> str | None:
    """None if the values of a fitting trainer state (check_fits) are ones that a run of ``spec`` holds after
    ``steps_done`` steps without having diverged; else what is wrong, naming the array. Each optimiser's update count
    is the updates of those steps (G one a step, D ``updates.d_steps``: a negative or other count would feed Adam's
    bias correction with it); every float is finite; no weight beyond ``weight_limit`` (benchmarks/cell.py
    WEIGHT_LIMIT: a run past it is diverged); the second moments (v) and the BatchNorm running variances >= 0."""
    updates = {"generator": steps_done, "discriminator": steps_done * spec.updates.d_steps}
    for network, expected in updates.items():
        t = int(state[f"opt/{network}/t"])
        if t != expected:
            return f"opt/{network}/t is {t}, not the {expected} updates of {steps_done} steps"
    for key in sorted(state):
        value, parts = state[key], key.split("/")
        if value.dtype.kind != "f" or value.size == 0:
            continue
        if not np.isfinite(value).all():
            return f"{key} holds NaN or infinity"
        if parts[0] in NETWORKS and np.abs(value).max() > weight_limit:
            return f"{key} holds {np.abs(value).max():.3g}, beyond the weight limit {weight_limit:g} of a run that " \
                   "has not diverged"
        second_moment = parts[0] == "opt" and parts[2] == "v"
        variance = parts[0] == "stats" and int(parts[2]) % 2 == 1  # statistics: mean, variance per BatchNorm
        if (second_moment or variance) and (value < 0).any():
            return f"{key} holds {value.min():.3g}, a negative {'second moment' if second_moment else 'variance'}"
    return None


def check_values(spec: GAN, state: dict[str, np.ndarray], where, steps_done: int, weight_limit: float) -> None:
    """ValueError naming ``where`` and the array unless ``state`` passes state_problem."""
    problem = state_problem(spec, state, steps_done, weight_limit)
    if problem is not None:
        raise ValueError(f"checkpoint {where} is corrupt: {problem}; delete it")


def save(path, spec: GAN, state: dict[str, np.ndarray]) -> None:
    """Write a checkpoint file (atomically)."""
    arrays = state_arrays(spec, state)
    atomic_write(path, lambda f: np.savez(f, **arrays))


def load(path, spec: GAN) -> dict[str, np.ndarray]:
    """The trainer state of a checkpoint file, checked against ``spec``."""
    return check_fits(spec, load_npz(path), path)
