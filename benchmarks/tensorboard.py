"""``--tensorboard DIR``: each run's curves and samples as TensorBoard event files, so the two frameworks overlay in
the tool their users already open (``tensorboard --logdir DIR``).

One run folder per (task, backend, mode, seed), named ``<task>/<backend>-<mode>-<loss>-s<seed>`` (``-ulp`` for the
chaos floor's twin), holding, per training step: ``loss/D``, ``loss/G``, ``D/real``, ``D/fake`` (mean D output
before each D update, as in the report) and ``time/step_ms`` (timed steps only, warm-up excluded, call time / K);
and per snapshot step the ``samples`` image (the report's own grid or plot of the fixed-noise samples).

Everything comes from the run's stored history (benchmarks/store.py), so the files can be written after a run and
never touch either framework: the events are the ``tensorboard`` package's own protocol buffers, framed by its
RecordWriter, which import neither PyTorch nor TensorFlow. Each run's one event file is written whole through
common.checkpoint.atomic_write (a crash never leaves half a run); a run written again replaces its file.
"""
from __future__ import annotations

import io
import socket
import time
from pathlib import Path

import numpy as np

from benchmarks import store
from common.checkpoint import atomic_write

SCALARS = (("d_loss", "loss/D"), ("g_loss", "loss/G"), ("d_real", "D/real"), ("d_fake", "D/fake"))
INSTALL_HINT = "pip install tensorboard==2.21.0 (or the project's [tensorboard] extra)"


def available() -> bool:
    import importlib.util

    return importlib.util.find_spec("tensorboard") is not None


def check_log_dir(log_dir) -> None:
    """ValueError unless the events can be written under ``log_dir``: the package is there, and the folder exists
    or can be created and takes a real file (store.prepare_out_dir's write probe, which leaves nothing behind),
    found before the first step like --out, not after the work."""
    if not available():
        raise ValueError(f"--tensorboard needs the tensorboard package: {INSTALL_HINT}")
    store.prepare_out_dir(log_dir, keep=False, flag="--tensorboard")


def run_folder(record: dict) -> str:
    suffix = store.INIT_SUFFIXES.get(record.get("init", "seed"), "")
    return f"{record['task']}/{record['backend']}-{record['mode']}-{record['loss']}-s{record['seed']}{suffix}"


def sample_frames(history: dict, record: dict) -> list:
    """The snapshots as PIL images: the report's image grids, scatter plots or curves (benchmarks/report/samples.py)."""
    from benchmarks.report import samples
    from benchmarks.report.doc import label

    shape = tuple(record.get("spec", {}).get("data_shape") or (history["snapshots"].shape[-1],))
    kind = samples.sample_kind(shape)
    snapshots = np.asarray(history["snapshots"], dtype=np.float32)
    steps = history["snapshot_steps"]
    name = label(record["backend"], record["mode"])
    if kind in ("digits", "faces"):
        return [samples.grid_frame(x, step, record["backend"], name, shape) for x, step in zip(snapshots, steps)]
    return samples.plot_frames(snapshots, steps, record["backend"], name, kind, None, False)


def png_summary(tag: str, image) -> object:
    from tensorboard.compat.proto import summary_pb2

    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="PNG")
    picture = summary_pb2.Summary.Image(height=image.height, width=image.width, colorspace=3,
                                        encoded_image_string=buffer.getvalue())
    return summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, image=picture)])


def events(record: dict, history: dict) -> list:
    """The run's Event protos: the file-version header, one event per step, one per snapshot."""
    from tensorboard.compat.proto import event_pb2, summary_pb2

    wall = time.time()  # then the step clock: TensorBoard's relative time axis shows training time
    out = [event_pb2.Event(wall_time=wall, file_version="brain.Event:2")]
    timed = np.asarray(history["timed"], dtype=bool)
    for i in range(len(history["d_loss"])):
        wall += float(history["step_time"][i])
        values = [summary_pb2.Summary.Value(tag=tag, simple_value=float(history[key][i])) for key, tag in SCALARS]
        if timed[i]:
            values.append(summary_pb2.Summary.Value(tag="time/step_ms", simple_value=1e3 * float(history["step_time"][i])))
        out.append(event_pb2.Event(step=i + 1, wall_time=wall, summary=summary_pb2.Summary(value=values)))
    for step, frame in zip(history["snapshot_steps"], sample_frames(history, record)):
        out.append(event_pb2.Event(step=int(step), wall_time=wall, summary=png_summary("samples", frame)))
    return out


def write_runs(log_dir, out_dir, keys) -> list[str]:
    """The event files of every run of ``out_dir`` whose cell (store.cell_of) is in ``keys``, the latest record of
    each, that ``log_dir`` does not hold yet: the runs of this command, and under --resume those recorded before
    it, so that the log directory shows every run the output folder holds. Returns one line per run whose history
    cannot be read (its events are left out; the record stands)."""
    latest = {store.cell_of(r): r for r in store.read_records(out_dir) if store.cell_of(r) in keys}
    problems = []
    for record in latest.values():
        if has_events(log_dir, record):
            continue
        try:
            history = store.read_history(out_dir, record["history"])
        except (KeyError, TypeError, ValueError) as error:  # no history, or a damaged one
            problems.append(f"tensorboard: no events for {record['run_id']}: {error}")
            continue
        write_run(log_dir, record, history)
    return problems


def has_events(log_dir, record: dict) -> bool:
    """Whether the run's event file (write_run's name ends in its run id) is in its run folder."""
    return any((Path(log_dir) / run_folder(record)).glob(f"events.out.tfevents.*.{record['run_id']}"))


def write_run(log_dir, record: dict, history: dict) -> Path:
    """Write one run's event file under ``log_dir`` (atomically; replacing the run's earlier file); returns its
    run folder. tensorboard's RecordWriter frames the records; its EventFileWriter is not used because it opens
    files through tf.io.gfile, which imports TensorFlow whenever it is installed."""
    from tensorboard.summary.writer.record_writer import RecordWriter

    folder = Path(log_dir) / run_folder(record)
    name = f"events.out.tfevents.{int(time.time()):010d}.{socket.gethostname()}.{record['run_id']}"
    data = [event.SerializeToString() for event in events(record, history)]

    def write(f):
        writer = RecordWriter(f)
        for item in data:
            writer.write(item)

    atomic_write(folder / name, write)
    for old in folder.glob("events.out.tfevents.*"):
        if old.name != name:
            old.unlink()
    return folder
