"""Timing helpers, environment capture and the analytic FLOP count."""
import importlib.util
import pathlib
import shutil
import subprocess
import types

import numpy as np
import pytest

from benchmarks import cell, timing
from common import flops, tasks
from common.init import init_weights
from common.spec import GAN, MLP, Loss, Updates


def test_summary_uses_only_timed_steps():
    times = np.array([9.0, 1.0, 2.0, 3.0, 4.0, 5.0])  # the first (warm-up) step is slow and excluded
    timed = np.array([False, True, True, True, True, True])
    stats = timing.summarize_steps(times, timed)
    assert stats == {"median_step_s": 3.0, "p25_step_s": 2.0, "p75_step_s": 4.0, "timed_steps": 5}
    assert timing.summarize_steps(times, np.zeros(6, bool))["timed_steps"] == 0


def test_compile_time_and_warmup():
    assert timing.compile_seconds(2.5, 0.5) == 2.0
    assert timing.compile_seconds(0.1, 0.5) == 0.0
    assert timing.default_warmup(100) == 5
    assert timing.default_warmup(10_000) == 200
    assert timing.default_warmup(3) == 2  # at least one step stays timed


class FakeClock:
    """perf_counter for benchmarks/cell.py: time moves only when the fake trainer or stream says so."""

    def __init__(self):
        self.now = 0.0

    def perf_counter(self):
        return self.now


class FakeStream:
    """Numbered inputs; drawing them costs 1000 s, which must never show in a step time."""

    def __init__(self, clock):
        self.clock, self.drawn = clock, 0

    def next(self):
        self.clock.now += 1000.0
        self.drawn += 1
        return types.SimpleNamespace(as_kwargs=lambda i=self.drawn - 1: {"step": i})

    def fixed_noise(self, n):
        return np.zeros((n, 5), np.float32)


class FakeTrainer:
    """Call i takes (i + 1) seconds, so each step time says which call it came from; snapshots cost 500 s."""

    def __init__(self, clock, spec):
        self.clock, self.steps, self.spec = clock, [], spec

    def train_step(self, step):
        self.steps.append(step)
        self.clock.now += len(self.steps)
        return {"d_loss": 1.0, "g_loss": 1.0, "d_real": 0.5, "d_fake": 0.5}

    def generate(self, noise):
        self.clock.now += 500.0
        return np.zeros((len(noise), 15), np.float32)

    def get_weights(self):
        return init_weights(self.spec, 0)


@pytest.mark.parametrize("warmup, untimed", [(3, 3), (1, 1), (0, 1)])  # at least one untimed first call
def test_the_step_clock_times_only_the_steps_after_warmup(monkeypatch, warmup, untimed):
    clock = FakeClock()
    monkeypatch.setattr(cell, "time", clock)
    parabola = tasks.get_task("parabola")
    stream, trainer = FakeStream(clock), FakeTrainer(clock, parabola.spec)
    loop_cell = cell.Cell(parabola, "fake", "eager", parabola.spec, steps=untimed + 4, seed=0)
    first, times = cell.time_steps(loop_cell, trainer, stream, warmup=warmup)
    assert first == 1.0  # the very first call, compile/trace included
    assert times.tolist() == [float(untimed + i + 1) for i in range(4)]  # calls untimed+1 .. untimed+4 only
    assert trainer.steps == list(range(untimed + 4))  # one fresh stream input per call, in order
    assert stream.drawn == untimed + 4


def test_sgemm_measurement_is_a_positive_rate():
    rate = timing.sgemm_gflops_numpy(size=128, repeats=2)
    assert np.isfinite(rate) and rate > 0


def test_machine_peak_takes_the_best_of_numpy_and_backends(monkeypatch):
    monkeypatch.setattr(timing, "sgemm_gflops_numpy", lambda: 10.0)
    fast = types.SimpleNamespace(NAME="fast", sgemm_gflops=lambda: 25.0)
    plain = types.SimpleNamespace(NAME="plain")  # no sgemm_gflops: numpy only
    peak = timing.machine_peak([fast, plain])
    assert peak == {"sgemm_gflops": {"numpy": 10.0, "fast": 25.0}, "peak_gflops": 25.0}


def test_environment_names_versions_devices_and_commit():
    backend = types.SimpleNamespace(NAME="fake", versions=lambda: {"fakelib": "1.2"}, device_name=lambda d: "cpu")
    env = timing.environment([backend], {"fake": {"threads": 2}}, "auto", ["--task", "parabola"])
    assert env["versions"]["fakelib"] == "1.2" and env["versions"]["numpy"] == np.__version__
    assert env["devices"] == {"fake": "cpu"} and env["configure"] == {"fake": {"threads": 2}}
    assert env["cpu_count"] >= 1 and env["cpu"] and env["argv"] == ["--task", "parabola"]
    assert env["git"] == timing.git_state()


def git(cwd, *args):
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)


def timing_copy_in(folder: pathlib.Path):
    """benchmarks/timing.py copied to ``folder``/benchmarks and imported from there: a suite living in ``folder``."""
    path = folder / "benchmarks" / "timing.py"
    path.parent.mkdir(parents=True)
    shutil.copy(timing.__file__, path)
    spec = importlib.util.spec_from_file_location("timing_copy", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_git_state_is_the_suites_own_head_whatever_the_working_folder(tmp_path, monkeypatch):
    suite = pathlib.Path(timing.__file__).resolve().parents[1]
    if shutil.which("git") is None or git(suite, "rev-parse", "HEAD").returncode != 0:
        pytest.skip("git is absent or the suite is not a git checkout")
    head = git(suite, "rev-parse", "HEAD").stdout.strip()
    monkeypatch.chdir(tmp_path)  # the repository is found from the suite's files, not from the working folder
    state = timing.git_state()
    assert state["commit"] == head and isinstance(state["dirty"], bool)


@pytest.mark.skipif(shutil.which("git") is None, reason="git is absent")
def test_git_state_dirty_means_tracked_changes_only(tmp_path):
    repo = tmp_path / "repo"
    copy = timing_copy_in(repo)
    (repo / "README.md").write_text("suite\n")
    for args in (["init", "-q"], ["add", "."],
                 ["-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false", "commit", "-qm", "x"]):
        assert git(repo, *args).returncode == 0
    head = git(repo, "rev-parse", "HEAD").stdout.strip()
    assert copy.git_state() == {"commit": head, "dirty": False}
    (repo / "results.json").write_text("{}")  # untracked output: still clean
    assert copy.git_state() == {"commit": head, "dirty": False}
    (repo / "README.md").write_text("suite, edited\n")
    assert copy.git_state() == {"commit": head, "dirty": True}


def test_git_state_is_unknown_outside_a_checkout_or_without_git(tmp_path, monkeypatch):
    copy = timing_copy_in(tmp_path / "suite")
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))  # no repository above tmp_path either
    assert copy.git_state() == {"commit": "unknown", "dirty": None}
    monkeypatch.setenv("PATH", str(tmp_path))  # no git program at all
    assert timing.git_state() == {"commit": "unknown", "dirty": None}


def mnist_like(batch=128, **changes) -> GAN:
    spec = GAN(latent_dim=100, generator=MLP((100, 128, 256, 512, 1024, 784), "leaky_relu", "tanh"),
               discriminator=MLP((784, 512, 256, 1), "leaky_relu", "sigmoid"), data_shape=(784,),
               batch_size=batch)
    return spec.replace(**changes)


def test_flops_of_the_mnist_model_match_the_worked_example():
    count = flops.train_step_flops(mnist_like())
    # The docstring's hand count, written out: multiply-adds per example of G, D and their first layers.
    fwd_g, fwd_d = 2 * 128 * 1_503_744, 2 * 128 * 532_736
    first_g, first_d = 2 * 128 * 100 * 128, 2 * 128 * 784 * 512
    assert count["d_update"] == fwd_g + 2 * fwd_d + 2 * (2 * fwd_d - first_d) == 997_720_064
    assert count["g_update"] == fwd_g + 2 * fwd_d + 2 * fwd_g - first_g == 1_424_359_424
    assert count["total"] == 2_422_079_488  # 2.42 GFLOP: the brief estimated "about 2.2" (see docstring)
    assert count["examples"] == 3 * 128 and not count["approximate"]


def test_flops_scale_with_batch_and_follow_the_update_semantics():
    base = flops.train_step_flops(mnist_like(batch=64))
    assert flops.train_step_flops(mnist_like(batch=128))["total"] == 2 * base["total"]
    reuse = flops.train_step_flops(mnist_like(batch=64, updates=Updates("g_then_d", reuse_fake=True)))
    assert base["total"] - reuse["total"] == flops.forward_flops(mnist_like(batch=64).generator, 64)
    five = flops.train_step_flops(mnist_like(batch=64, updates=Updates("d_then_g", d_steps=5)))
    assert five["d_update"] == 5 * base["d_update"] and five["g_update"] == base["g_update"]
    gp = flops.train_step_flops(mnist_like(batch=64).with_loss(Loss("wgan-gp")))
    assert gp["d_update"] > base["d_update"] and gp["approximate"]
