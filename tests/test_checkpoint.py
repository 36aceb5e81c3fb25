"""The one writer and the trainer-state format (common/checkpoint.py): atomic, one permission policy, one layout."""
from __future__ import annotations

import io
import os
import random
import signal
import stat
import sys

import numpy as np
import pytest

from benchmarks import store
from common import checkpoint
from common.backend import get_backend
from common.init import init_weights
from common.spec import GAN, MLP, Optimizer

# The harness runs in this process: PyTorch on one thread (conftest.one_torch_thread).
pytestmark = pytest.mark.usefixtures("one_torch_thread")

SPEC = GAN(latent_dim=3, generator=MLP((3, 8, 4)), discriminator=MLP((4, 8, 1), output_activation="sigmoid"),
           data_shape=(4,), batch_size=4, d_optimizer=Optimizer("adam", lr=1e-2), g_optimizer=Optimizer("rmsprop", lr=1e-2))


def trained(backend: str, seed: int = 0, steps: int = 2):
    trainer = get_backend(backend).build(SPEC, init_weights(SPEC, seed), device="cpu", mode="eager")
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        trainer.train_step(rng.standard_normal((1, 4, 4), dtype=np.float32), rng.standard_normal((2, 4, 3), dtype=np.float32))
    return trainer


def expected_keys(spec: GAN) -> set[str]:
    """The documented layout, written out from the spec alone."""
    keys = set()
    for network, mlp, opt in (("generator", spec.generator, spec.g_optimizer),
                              ("discriminator", spec.discriminator, spec.d_optimizer)):
        count = 2 * len(mlp.layer_shapes)
        keys |= {f"{network}/{i}" for i in range(count)} | {f"opt/{network}/t"}
        for moment in (("m", "v") if opt.name == "adam" else ("v",)):
            keys |= {f"opt/{network}/{moment}/{i}" for i in range(count)}
    return keys


@pytest.mark.parametrize("backend", ["torch", "tf"])
def test_state_has_the_documented_neutral_layout(backend):
    state = trained(backend).state()
    assert set(state) == expected_keys(SPEC) == set(checkpoint.layout(SPEC))
    for key, (shape, kind) in checkpoint.layout(SPEC).items():  # the layout checkpoints are checked against
        assert state[key].shape == shape and state[key].dtype.kind == kind, key
    assert int(state["opt/generator/t"]) == 2 and int(state["opt/discriminator/t"]) == 2
    for network, mlp in (("generator", SPEC.generator), ("discriminator", SPEC.discriminator)):
        for i, (fan_in, fan_out) in enumerate(mlp.layer_shapes):
            assert state[f"{network}/{2 * i}"].shape == (fan_in, fan_out)  # kernels (in, out) in both backends
            assert state[f"opt/{network}/v/{2 * i}"].shape == (fan_in, fan_out)
            assert state[f"{network}/{2 * i + 1}"].shape == (fan_out,)


@pytest.mark.parametrize("source, target", [("torch", "tf"), ("tf", "torch")])
def test_state_moves_between_backends_exactly(source, target):
    state = trained(source).state()
    other = get_backend(target).build(SPEC, init_weights(SPEC, 9), device="cpu", mode="eager")
    other.load_state(state)
    back = other.state()
    assert set(back) == set(state)
    for key, value in state.items():
        np.testing.assert_array_equal(back[key], value, err_msg=key)


def test_a_checkpoint_is_replaced_atomically(tmp_path, monkeypatch):
    """A save that dies half-way leaves the previous checkpoint whole and loadable, and no temp file."""
    path = tmp_path / "ckpt.npz"
    first = trained("torch", steps=1)
    first.save(path)
    before = path.read_bytes()

    def dies_half_way(file, **arrays):
        file.write(b"PK\x03\x04 half a zip")
        raise OSError("disk full")
    monkeypatch.setattr(np, "savez", dies_half_way)
    with pytest.raises(OSError, match="disk full"):
        trained("torch", steps=3).save(path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.npz"]
    again = get_backend("torch").build(SPEC, init_weights(SPEC, 5), device="cpu", mode="eager")
    again.load(path)
    assert int(again.state()["opt/generator/t"]) == 1


def test_every_file_gets_one_permission_policy(tmp_path):
    """Checkpoints, store checkpoints and results: 0666 less the umask, like any file the user makes."""
    umask = os.umask(0o022)
    os.umask(umask)
    trainer = trained("torch", steps=1)
    trainer.save(tmp_path / "ckpt.npz")
    store.save_checkpoint(tmp_path, "cell", trainer, {"d_loss": np.zeros(1)}, {"steps_done": 1})
    store.write_history(tmp_path, "run", {"d_loss": np.zeros(1)})
    files = [tmp_path / "ckpt.npz", store.checkpoint_path(tmp_path, "cell"), tmp_path / "histories" / "run.npz"]
    assert {stat.S_IMODE(f.stat().st_mode) for f in files} == {0o666 & ~umask}


def test_a_checkpoint_of_another_gan_is_refused_naming_the_file(tmp_path):
    path = tmp_path / "ckpt.npz"
    trained("tf").save(path)
    wider = SPEC.replace(generator=MLP((3, 16, 4)))
    trainer = get_backend("torch").build(wider, init_weights(wider, 0), device="cpu", mode="eager")
    with pytest.raises(ValueError, match=f"checkpoint {path} does not fit this GAN: generator"):
        trainer.load(path)
    other_optimizer = SPEC.replace(g_optimizer=Optimizer("adam"))
    with pytest.raises(ValueError, match="g_optimizer.name: checkpoint 'rmsprop', this trainer 'adam'"):
        checkpoint.load(path, other_optimizer)


def test_a_checkpoint_with_the_right_spec_but_other_arrays_is_refused(tmp_path):
    """The spec in the file is not enough: every array's key, shape and kind is checked before a trainer loads it."""
    state = trained("torch").state()
    for change, problem in (
            (lambda st: st.update({"generator/0": np.zeros((9, 9), np.float32)}), "generator/0: float32 (9, 9)"),
            (lambda st: st.pop("opt/discriminator/t"), "opt/discriminator/t is missing"),
            (lambda st: st.update({"extra": np.zeros(1)}), "extra is not part of the state"),
            (lambda st: st.update({"opt/generator/t": np.array(2.5)}), "opt/generator/t: float64 (), expected () integers")):
        damaged = dict(state)
        change(damaged)
        checkpoint.save(tmp_path / "ckpt.npz", SPEC, damaged)
        with pytest.raises(ValueError, match="does not fit this GAN") as refused:
            checkpoint.load(tmp_path / "ckpt.npz", SPEC)
        assert problem in str(refused.value)


def npz_bytes() -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, a=np.arange(300.0), b=np.ones((20, 15), np.float16), meta=np.array('{"x": 1}'))
    return buffer.getvalue()


def test_a_damaged_npz_is_one_value_error_naming_the_file(tmp_path):
    """Truncated and bit-flipped archives (as a crash, a copy or a disk can leave them): whatever the damage, the one
    reader either reads it or raises ValueError naming the file; never BadZipFile, EOFError, zlib.error..."""
    raw, rng = npz_bytes(), random.Random(0)
    path = tmp_path / "damaged.npz"
    damaged = [raw[:cut] for cut in range(0, len(raw), 23)]
    for _ in range(300):
        flipped = bytearray(raw)
        for _ in range(rng.randint(1, 4)):
            flipped[rng.randrange(len(flipped))] = rng.randrange(256)
        damaged.append(bytes(flipped))
    refused = 0
    for data in damaged:
        path.write_bytes(data)
        try:
            checkpoint.load_npz(path)
        except ValueError as error:
            assert str(path) in str(error)
            refused += 1
    assert refused > len(damaged) // 2
    np.save(tmp_path / "one.npy", np.zeros(3))
    os.replace(tmp_path / "one.npy", path)
    with pytest.raises(ValueError, match="one .npy array, not an .npz"):
        checkpoint.load_npz(path)


def line_events(function, filenames) -> int:
    """How many line events ``function()`` runs in the given source files."""
    count = 0

    def tracer(frame, event, arg):
        nonlocal count
        if frame.f_code.co_filename in filenames:
            if event == "line":
                count += 1
            return tracer
        return None

    sys.settrace(tracer)
    try:
        function()
    finally:
        sys.settrace(None)
    return count


def signal_at_line(function, filenames, at: int) -> BaseException | None:
    """Run ``function()`` with a real SIGINT sent at its ``at``-th line event in ``filenames``: the signal lands
    there as one from a user would (held where the code holds signals). Returns what it raised."""
    count = 0

    def tracer(frame, event, arg):
        nonlocal count
        if frame.f_code.co_filename in filenames:
            if event == "line":
                count += 1
                if count == at:
                    os.kill(os.getpid(), signal.SIGINT)
            return tracer
        return None

    sys.settrace(tracer)
    try:
        function()
    except KeyboardInterrupt as stop:
        return stop
    finally:
        sys.settrace(None)
    return None


def test_a_signal_at_any_line_of_the_writer_leaves_the_old_file_or_the_new_one_and_no_temp(tmp_path):
    target = tmp_path / "f.bin"
    checkpoint.atomic_write(target, lambda f: f.write(b"old"))
    files = {checkpoint.__file__}
    events = line_events(lambda: checkpoint.atomic_write(target, lambda f: f.write(b"new")), files)
    assert events > 20
    interrupted = 0
    for at in range(1, events + 1):
        checkpoint.atomic_write(target, lambda f: f.write(b"old"))
        stop = signal_at_line(lambda: checkpoint.atomic_write(target, lambda f: f.write(b"new")), files, at)
        interrupted += stop is not None
        assert target.read_bytes() in (b"old", b"new"), at
        assert sorted(p.name for p in tmp_path.iterdir()) == ["f.bin"], at
    assert interrupted == events  # every signal reached the caller: held ones after the block, never lost
