"""PyTorch's compiled K-step region (backend_torch/trainer.py, issue 26): train_steps(K) runs K // region_steps
calls of one graph of region_steps steps unrolled, then the rest step by step. Each test compares K steps of the
region with K single eager steps on the same inputs, step by step (every step's four results, the optimisers'
step counts, the final weights and optimiser state), so a region that skipped, repeated or reordered a step fails.

Inductor compiles are the suite's slowest tests: Inductor itself runs on one loss, the gradient penalty's double
backward and the fallback; every loss and optimiser runs the same dynamo trace and AOTAutograd graph with eager
kernels (backend "aot_eager": the region's construction and its step order, without Inductor's rounding).
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

import backend_torch
from backend_torch import trainer as torch_trainer
from common.init import init_weights
from common.spec import GAN, LOSSES, MLP, Loss, Optimizer, Updates
from common.tolerances import MODE_ATOL

BATCH = 8


def tiny_spec(loss="minimax", order="d_then_g", d_steps=1, reuse_fake=False, implementation="spec"):
    opt = Optimizer(lr=1e-2, implementation=implementation)  # a large rate: a skipped step moves the weights visibly
    spec = GAN(latent_dim=3, generator=MLP((3, 8, 4)), discriminator=MLP((4, 8, 1), output_activation="sigmoid"),
               data_shape=(4,), batch_size=BATCH, d_optimizer=opt, g_optimizer=opt,
               updates=Updates(order=order, d_steps=d_steps, reuse_fake=reuse_fake),
               loss=Loss(name="nonsaturating"), init="torch_default")
    return spec.with_loss(Loss(name=loss))


def inputs(spec, steps, seed=1):
    """(real, noise, gp_eps) for ``steps`` steps, different at every step."""
    rng = np.random.default_rng(seed)
    d = spec.updates.d_steps
    real = rng.standard_normal((steps, d, BATCH, spec.data_dim)).astype(np.float32)
    noise = rng.standard_normal((steps, d + 1, BATCH, spec.latent_dim)).astype(np.float32)
    gp_eps = rng.random((steps, d, BATCH)).astype(np.float32) if spec.loss.name == "wgan-gp" else None
    return real, noise, gp_eps


@pytest.fixture
def options(monkeypatch):
    """Set backend_torch.trainer.COMPILE_OPTIONS for the trainers a test builds; dynamo's caches start empty."""
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()

    def set_options(**changes):
        monkeypatch.setattr(torch_trainer, "COMPILE_OPTIONS",
                            dataclasses.replace(torch_trainer.COMPILE_OPTIONS, **changes))
    yield set_options
    torch._dynamo.reset()


def region_against_eager(spec, k, atol):
    """K steps through train_steps (compiled) against K train_step calls in eager mode, same start and inputs:
    every step's results, the step counts, the final weights and the whole state within ``atol``. Returns the
    compiled trainer."""
    weights = init_weights(spec, 0)
    eager = backend_torch.build(spec, weights, device="cpu", mode="eager")
    compiled = backend_torch.build(spec, weights, device="cpu", mode="compiled")
    real, noise, gp_eps = inputs(spec, k)
    singles = [eager.train_step(real[i], noise[i], None if gp_eps is None else gp_eps[i]) for i in range(k)]
    many = compiled.train_steps(real, noise, gp_eps)
    assert_steps_equal(many, singles, atol)
    assert compiled.g_opt.t == compiled.d_opt.t // spec.updates.d_steps == k
    mine, theirs = compiled.state(), eager.state()
    assert mine.keys() == theirs.keys()
    for key in mine:
        np.testing.assert_allclose(mine[key], theirs[key], rtol=0, atol=atol, err_msg=key)
    return compiled


def assert_steps_equal(many: dict, singles: list[dict], atol: float) -> None:
    """train_steps' (K,) arrays against K train_step results, step by step."""
    assert all(len(values) == len(singles) for values in many.values())
    for key, values in many.items():
        np.testing.assert_allclose(values, [s[key] for s in singles], rtol=0, atol=atol, err_msg=key)


def region_graphs() -> int:
    return torch._dynamo.utils.counters["stats"]["unique_graphs"]


def test_region_with_inductor_equals_single_eager_steps(options):
    """Inductor: K = 4 with 2 steps per region: two calls of one graph (the chunks' views do not recompile it;
    the second call skips dynamo's guards). The one Inductor compile of this file (WGAN-GP's double backward in a
    region: measured to compile whole with Inductor, docs/speed.md; its trace is tested below)."""
    options(region_steps=2, skip_guards=True)
    compiled = region_against_eager(tiny_spec("minimax", order="g_then_d", reuse_fake=True), 4, MODE_ATOL["torch"])
    assert "2 steps unrolled per graph call" in compiled.compiled_as and "fell back" not in compiled.compiled_as
    assert region_graphs() == 1


@pytest.mark.parametrize("loss", LOSSES)
def test_every_loss_region_equals_single_eager_steps(options, loss):
    """Every loss, with 2 steps per region and K = 5 (two region calls, the second with guards skipped, and one
    single step), on an update order that uses every branch of the schedule across the losses."""
    options(region_steps=2, backend="aot_eager")
    order, d_steps, reuse = {"minimax": ("g_then_d", 2, True), "nonsaturating": ("simultaneous", 1, False),
                             "wasserstein": ("d_then_g", 2, False), "wgan-gp": ("d_then_g", 1, False),
                             "hinge": ("d_then_g", 2, True), "least-squares": ("g_then_d", 1, False)}[loss]
    compiled = region_against_eager(tiny_spec(loss, order, d_steps, reuse), 5, MODE_ATOL["torch"])
    assert "2 steps unrolled per graph call" in compiled.compiled_as


def test_torch_optim_runs_step_by_step_and_says_so(options):
    """torch.optim breaks the graph around step(): no region; K steps run step by step, recorded in compiled_as."""
    options(region_steps=2, backend="aot_eager")
    compiled = region_against_eager(tiny_spec("nonsaturating", implementation="native"), 3, MODE_ATOL["torch"])
    assert "steps unrolled" not in compiled.compiled_as
    assert "step by step, the K-step region fell back (torch.optim breaks the graph" in compiled.compiled_as


def test_a_region_that_does_not_compile_falls_back_and_says_so(options, monkeypatch):
    """A region dynamo cannot trace whole: the first call falls back to the step's graph (nothing ran twice: the
    results still equal eager), every later call skips the region, and compiled_as records why."""
    options(region_steps=2, backend="eager")
    original = torch_trainer.Trainer._region_schedule

    def untraceable(self, *args):
        torch._dynamo.graph_break()
        return original(self, *args)
    monkeypatch.setattr(torch_trainer.Trainer, "_region_schedule", untraceable)
    compiled = region_against_eager(tiny_spec(), 5, MODE_ATOL["torch"])
    assert "steps unrolled" not in compiled.compiled_as
    assert "step by step, the K-step region fell back (Unsupported" in compiled.compiled_as


@pytest.mark.parametrize("fault", ["skip", "repeat", "swap"])
def test_the_comparison_catches_a_region_that_skips_or_repeats_a_step(options, monkeypatch, fault):
    """The check these tests make fails for a region that skips, repeats or reorders a step (dynamo's trace run
    by eager kernels: the fault is in the step order, not in a kernel)."""
    options(region_steps=3, backend="eager")

    def faulty(self, real, noise, gp_eps, dropout):
        order = {"skip": [0, 2], "repeat": [0, 1, 1, 2], "swap": [1, 0, 2]}[fault]
        return torch.stack([self.schedule(real[i], noise[i], None, None) for i in order])[:3]
    monkeypatch.setattr(torch_trainer.Trainer, "_region_schedule", faulty)
    with pytest.raises(AssertionError):
        region_against_eager(tiny_spec(), 3, MODE_ATOL["torch"])


def test_k_below_region_steps_runs_the_step_graph(options):
    """K below region_steps: the step's own graph K times (no second graph compiled for a short call)."""
    options(region_steps=4, backend="eager")
    compiled = region_against_eager(tiny_spec(), 3, MODE_ATOL["torch"])
    assert "steps unrolled" not in compiled.compiled_as and region_graphs() == 1


def test_dynamo_is_configured_once_not_per_call():
    """No context manager per call: building a compiled trainer sets dynamo's settings for the process."""
    spec = tiny_spec()
    backend_torch.build(spec, init_weights(spec, 0), device="cpu", mode="compiled")
    assert torch._dynamo.config.trace_autograd_ops is True
    assert torch._dynamo.config.recompile_limit >= torch_trainer.RECOMPILE_LIMIT


def test_skipped_guards_never_run_another_trainers_region(options):
    """Two trainers of the same shapes but different losses in one process, their K-step calls interleaved: each
    region call after a call's first skips dynamo's guards, and must still run its own trainer's graph (the
    guards that tell the two cache entries apart are kept)."""
    options(region_steps=2, backend="aot_eager", skip_guards=True)
    specs = [tiny_spec("minimax"), tiny_spec("hinge")]
    weights = init_weights(specs[0], 0)
    compiled = [backend_torch.build(spec, weights, device="cpu", mode="compiled") for spec in specs]
    eager = [backend_torch.build(spec, weights, device="cpu", mode="eager") for spec in specs]
    for call in range(2):
        for which in (0, 1):
            real, noise, _ = inputs(specs[which], 4, seed=10 * call + which)
            many = compiled[which].train_steps(real, noise)
            singles = [eager[which].train_step(real[i], noise[i]) for i in range(4)]
            assert_steps_equal(many, singles, MODE_ATOL["torch"])
    assert region_graphs() == 2


def test_on_cuda_each_replay_results_are_copied_out():
    """The CUDA path without a GPU, as far as it goes: a CUDA graph replay writes into the same static buffer each
    time (here a function that does exactly that), and the trainer keeps every call's own results."""
    from types import SimpleNamespace

    static = torch.zeros(2, 4)

    def replay(value):
        static.fill_(value)
        return static
    fake = SimpleNamespace(device=torch.device("cuda"))
    kept = [torch_trainer.Trainer._replayed(fake, replay, (value,)) for value in (1.0, 2.0)]
    assert [float(t[0, 0]) for t in kept] == [1.0, 2.0]
    assert torch_trainer._compiled(lambda x: x, torch.device("cuda"), backend="aot_eager") is not None
