"""--tensorboard DIR: one run folder per (task, backend, mode, seed), readable with tensorboard's own event reader,
holding every step's losses, D outputs and step time and the sample grids; written without importing a framework."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from benchmarks import run, store, timing

ROOT = Path(__file__).resolve().parents[1]
STEPS = 12
# The harness runs in this process: PyTorch on one thread (conftest.one_torch_thread; its default threads made a small
# model's eager step up to 60x slower on a loaded 2-core machine). The runs record the thread count they ran with.
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    out, logs = tmp_path_factory.mktemp("results"), tmp_path_factory.mktemp("tb")
    patch = pytest.MonkeyPatch()
    patch.setattr(timing, "SGEMM_SIZE", 128)
    try:
        assert run.main(["--task", "parabola", "--backend", "torch", "--mode", "eager", "--steps", str(STEPS),
                         "--num-seeds", "2", "--out", str(out), "--no-report", "--tensorboard", str(logs)]) == 0
    finally:
        patch.undo()
    return out, logs


def test_one_readable_run_folder_per_run(logged):
    out, logs = logged
    folders = sorted(p.relative_to(logs).as_posix() for p in logs.glob("*/*") if p.is_dir())
    assert folders == ["parabola/torch-eager-minimax-s0", "parabola/torch-eager-minimax-s1"]
    for record in store.read_records(out):
        history = store.read_history(out, record["history"])
        events = EventAccumulator(str(logs / "parabola" / f"torch-eager-minimax-s{record['seed']}"),
                                  size_guidance={"scalars": 0, "images": 0})
        events.Reload()
        tags = events.Tags()
        assert set(tags["scalars"]) == {"loss/D", "loss/G", "D/real", "D/fake", "time/step_ms"}
        d_loss = events.Scalars("loss/D")
        assert [e.step for e in d_loss] == list(range(1, STEPS + 1))
        np.testing.assert_allclose([e.value for e in d_loss], history["d_loss"], rtol=1e-6)
        np.testing.assert_allclose([e.value for e in events.Scalars("D/fake")], history["d_fake"], rtol=1e-6)
        timed = events.Scalars("time/step_ms")
        assert len(timed) == history["timed"].sum() == record["timed_steps"]
        np.testing.assert_allclose([e.value for e in timed], 1e3 * history["step_time"][history["timed"]], rtol=1e-6)
        images = events.Images("samples")
        assert [e.step for e in images] == history["snapshot_steps"].tolist()
        assert images[0].width > 100 and images[0].encoded_image_string.startswith(b"\x89PNG")


def test_writing_imports_neither_framework(logged, tmp_path):
    out, _ = logged
    record = store.read_records(out)[0]
    script = (f"import json, sys; from benchmarks import store, tensorboard; "
              f"r = json.loads({json.dumps(json.dumps(record))}); "
              f"tensorboard.write_run({str(tmp_path)!r}, r, store.read_history({str(out)!r}, r['history'])); "
              f"print(sorted(m for m in ('torch', 'tensorflow', 'keras') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"
    assert (tmp_path / "parabola" / "torch-eager-minimax-s0").is_dir()


def test_a_bad_tensorboard_folder_is_refused_before_anything_runs(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code = run.main(["--task", "parabola", "--backend", "torch", "--steps", "5", "--out", str(tmp_path / "out"),
                     "--no-report", "--tensorboard", str(blocker)])
    assert code == 2 and capsys.readouterr().err.startswith("error: ")
    assert not (tmp_path / "out").exists()
