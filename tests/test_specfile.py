"""Your own GAN in a TOML spec file (common/specfile.py): every built-in task round-trips through the format, a spec
file trains like a built-in task, every mistake is one line naming the file and the key, and the Python entry
point returns the records the command writes."""
from __future__ import annotations

import tomllib

import numpy as np
import pytest
from PIL import Image

from benchmarks import run, store
from benchmarks.compare import compare
from common import metrics, specfile, tasks
from common.backend import get_backend
from common.init import init_weights
from common.spec import GAN, MLP, Loss, Optimizer
from common.stream import Stream

# The harness runs in this process: PyTorch on one thread (conftest.one_torch_thread).
pytestmark = pytest.mark.usefixtures("one_torch_thread")

POINTS = """
name = "points"
steps = 40
quick_steps = 20
latent_dim = 2
data_shape = [2]
batch_size = 16

[data]
array = "points.npy"

[generator]
sizes = [2, 8, 2]
output_activation = "tanh"

[discriminator]
sizes = [2, 8, 1]
output_activation = "sigmoid"

[d_optimizer]
lr = 1e-3

[g_optimizer]
lr = 1e-3
"""


@pytest.fixture
def points(tmp_path):
    """A spec file and its data: 200 points in [-1, 1]^2."""
    np.save(tmp_path / "points.npy", np.random.default_rng(0).uniform(-0.9, 0.9, (200, 2)).astype(np.float32))
    (tmp_path / "points.toml").write_text(POINTS)
    return tmp_path / "points.toml"


@pytest.fixture
def faces(tmp_path, monkeypatch):
    monkeypatch.setenv("GAN_SUITE_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "faces"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return folder


@pytest.mark.parametrize("name", list(tasks.TASKS))
def test_every_builtin_task_round_trips_through_a_spec_file(name, tmp_path, faces):
    task = tasks.get_task(name)
    path = tmp_path / f"{name}.toml"
    path.write_text(specfile.task_to_toml(task))
    read = specfile.read_task(path, data_path=faces if task.data == "faces" else None)
    assert read.spec == task.spec  # the same frozen dataclasses, every layer and setting
    assert read.name == specfile.SPEC_PREFIX + name and read.name not in tasks.TASKS
    assert (read.steps, read.epochs, read.quick_steps, read.eval_samples, read.family) == \
        (task.steps, task.epochs, task.quick_steps, task.eval_samples, task.family)


@pytest.mark.parametrize("name", ["parabola", "gmm2"])
def test_a_task_read_back_trains_bit_for_bit_as_the_builtin(name, tmp_path):
    path = tmp_path / f"{name}.toml"
    path.write_text(specfile.task_to_toml(tasks.get_task(name)))
    results = []
    for task in (tasks.get_task(name), specfile.read_task(path)):
        trainer = get_backend("torch").build(task.spec, init_weights(task.spec, 3), device="cpu", mode="eager")
        stream = Stream(task.spec, task.load().source, 3)
        losses = [trainer.train_step(**stream.next().as_kwargs()) for _ in range(3)]
        results.append((losses, trainer.get_weights()))
    (losses_a, weights_a), (losses_b, weights_b) = results
    assert losses_a == losses_b
    assert all(np.array_equal(a, b) for a, b in zip(weights_a["generator"] + weights_a["discriminator"],
                                                    weights_b["generator"] + weights_b["discriminator"]))


def test_print_spec_writes_a_file_the_suite_reads(capsys, tmp_path):
    assert run.main(["--print-spec", "dcgan-mnist"]) == 0
    text = capsys.readouterr().out
    assert tomllib.loads(text)["generator"]["layers"][0] == {"type": "Dense", "units": 12544, "bias": False}
    assert run.main(["--print-spec", "nope"]) == 2
    assert capsys.readouterr().err.startswith("error: task 'nope' is invalid")


def mistakes(tmp_path) -> dict[str, tuple[str, str]]:
    """name -> (file text, what the one line must say)."""
    conv_g = POINTS.replace('[generator]\nsizes = [2, 8, 2]\noutput_activation = "tanh"',
                            '[generator]\ninput_shape = [2]\nlayers = [{ type = "Dense", units = 8 }, '
                            '{ type = "Reshape", shape = [2, 2, 2] }, { type = "Dense", units = 2 }]')
    np.save(tmp_path / "nan.npy", np.full((10, 2), np.nan, np.float32))
    np.save(tmp_path / "wide.npy", np.full((10, 2), 3.0, np.float32))
    np.savez(tmp_path / "two.npz", a=np.zeros((10, 2)), b=np.zeros((10, 2)))
    np.save(tmp_path / "three.npy", np.zeros((10, 3), np.float32))
    return {
        "not TOML": ("name = ", "not a readable TOML file"),
        "unknown key": (POINTS + "\nlearning_rate = 3\n", "learning_rate: unknown key; allowed: name"),
        "unknown table key": (POINTS.replace("[d_optimizer]\n", "[d_optimizer]\nmomentum = 0.9\n"),
                              "d_optimizer.momentum: unknown key; allowed: name, lr"),
        "wrong type": (POINTS.replace("batch_size = 16", 'batch_size = "big"'), ": batch_size='big' is invalid"),
        "wrong value": (POINTS.replace("[d_optimizer]\nlr = 1e-3", "[d_optimizer]\nlr = -1"),
                        "d_optimizer.lr=-1 is invalid; allowed: a finite number > 0"),
        "unknown layer kind": (conv_g.replace('"Reshape"', '"Reshpe"'),
                               "generator.layers[1].type: 'Reshpe' is invalid; allowed: Dense"),
        "unknown layer field": (conv_g.replace('units = 8 }', 'units = 8, kernal = 3 }'),
                                "generator.layers[0].kernal: unknown key; allowed: units, bias"),
        "shapes that do not chain": (conv_g, ": generator.layers[2]='Dense' is invalid; allowed: a flat (F,) input, "
                                             "got (2, 2, 2): add a Flatten"),
        "output of another shape": (POINTS.replace("sizes = [2, 8, 2]", "sizes = [2, 8, 3]"),
                                    ": generator.sizes[-1]=3 is invalid; allowed: prod(data_shape) = 2"),
        "missing network": (POINTS.replace('[discriminator]\nsizes = [2, 8, 1]\noutput_activation = "sigmoid"', ""),
                            "discriminator: missing"),
        "steps and epochs": (POINTS.replace("steps = 40", "steps = 40\nepochs = 2"), "exactly one of steps and epochs"),
        "no data file": (POINTS.replace("points.npy", "gone.npy"), "data.array"),
        "NaN in the data": (POINTS.replace("points.npy", "nan.npy"), "holds NaN or Inf"),
        "data outside tanh": (POINTS.replace("points.npy", "wide.npy"), "outside the generator's tanh range"),
        "npz of two arrays": (POINTS.replace("points.npy", "two.npz"), "holds 2 arrays"),
        "data of another shape": (POINTS.replace("points.npy", "three.npy"), "examples of shape [3]"),
        "two data sources": (POINTS.replace('[data]\n', '[data]\nbuiltin = "gmm2"\n'), "data: "),
        "unknown builtin": (POINTS.replace('array = "points.npy"', 'builtin = "imagenet"'),
                            "data.builtin: 'imagenet' is invalid; allowed: "),
    }


def test_every_mistake_in_a_spec_file_is_one_line_naming_the_file_and_key(points, tmp_path, capsys):
    for name, (text, expected) in mistakes(tmp_path).items():
        path = tmp_path / f"{name.replace(' ', '-')}.toml"
        path.write_text(text)
        out = tmp_path / "out" / name.replace(" ", "-")
        code = run.main(["--spec", str(path), "--backend", "torch", "--mode", "eager", "--out", str(out)])
        err = capsys.readouterr().err.strip()
        assert code == 2, (name, err)
        assert err.count("\n") == 0 and err.startswith(f"error: {path}: "), (name, err)
        assert expected in err, (name, err)
        assert not out.exists(), name  # nothing written


def test_a_spec_file_trains_in_both_frameworks_and_resumes(points, tmp_path, capsys):
    out = tmp_path / "out"
    flags = ["--spec", str(points), "--backend", "both", "--mode", "eager", "--out", str(out), "--no-report"]
    assert run.main(flags) == 0
    records = store.read_records(out)
    assert {r["task"] for r in records} == {"spec.points"}
    assert {(r["backend"], r["init"]) for r in records} == {("torch", "seed"), ("tf", "seed"), ("torch", "seed+order1"),
                                                            ("torch", "seed+order2"), ("torch", "seed+order3")}
    assert all(r["steps_done"] == 20 for r in records)  # the file's quick_steps
    assert set(records[0]["metrics"]) == {"data_mmd_rbf", "data_energy_distance"}
    assert records[0]["data"]["notice"] == metrics.GENERIC_NOTE  # which scores, and why no others
    capsys.readouterr()
    assert run.main([*flags, "--resume"]) == 0
    assert "0 runs to do (5 already in" in capsys.readouterr().out
    assert run.main(["--spec", str(points), "--data-dir", str(tmp_path), "--out", str(out)]) == 2


def test_data_replaces_the_files_data(points, tmp_path):
    np.save(tmp_path / "other.npy", np.zeros((50, 2), np.float32))
    task = specfile.read_task(points, data_path=tmp_path / "other.npy")
    assert task.load().n_train == 50 and "other.npy" in task.data_description


def test_compare_returns_the_records_the_command_writes(tmp_path):
    gan = GAN(latent_dim=2, data_shape=(2,), batch_size=16, generator=MLP((2, 8, 2), "relu", "tanh"),
              discriminator=MLP((2, 8, 1), "relu", "sigmoid"), loss=Loss("nonsaturating"),
              d_optimizer=Optimizer(lr=1e-3), g_optimizer=Optimizer(lr=1e-3))
    points = np.random.default_rng(1).uniform(-1, 1, (100, 2)).astype(np.float32)
    records = compare(gan, points, name="mine", steps=10, backends=("torch",), mode="eager", out=tmp_path / "out",
                      report=False)
    assert [r["task"] for r in records] == ["spec.mine"] and records[0]["steps_done"] == 10
    stored = store.read_records(tmp_path / "out")
    assert [r["run_id"] for r in stored] == [records[0]["run_id"]]
    with pytest.raises(ValueError, match="holds NaN or Inf"):
        compare(gan, np.full((10, 2), np.nan), out=tmp_path / "bad")
    assert not (tmp_path / "bad").exists()
    with pytest.raises(ValueError, match="'tf' is named twice"):  # backends as --backend takes them
        compare(gan, points, backends=("tf", "torch", "tf"), out=tmp_path / "twice")
    assert not (tmp_path / "twice").exists()


def test_parity_measures_a_spec_files_gan_against_the_bounds(points, capsys):
    from benchmarks import parity

    assert parity.main(["--spec", str(points), "--seeds", "2"]) == 0
    out = capsys.readouterr().out
    assert "spec.points: 2 seeds" in out and "within every bound" in out
    assert "every weight after 20 steps" in out  # an MLP: the per-coordinate bound, derived
    assert parity.main(["--spec", str(points.with_name("nope.toml"))]) == 2
    assert "nope.toml: no such file" in capsys.readouterr().err
