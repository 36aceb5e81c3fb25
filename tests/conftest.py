"""Fixtures and helpers shared by the test files."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from benchmarks import plan, run, timing
from common.spec import GAN, MLP, Loss, Optimizer, Updates

# The tiny GAN of the backend tests (tests/test_backend_contract.py, tests/test_backend_tf.py)
LATENT, DATA, HIDDEN, BATCH = 3, 4, 8, 6


@pytest.fixture
def cheap_peak(monkeypatch):
    """The sgemm peak measured on 128x128 matrices: the 2048 measurement is for real runs."""
    monkeypatch.setattr(timing, "SGEMM_SIZE", 128)


def small_spec(loss="least-squares", order="d_then_g", d_steps=1, reuse_fake=False, opt=None, **changes) -> GAN:
    """A tiny GAN; D's output activation follows the loss (also for a ``discriminator`` given in changes)."""
    opt, loss = opt or Optimizer(lr=1e-2, beta1=0.5), Loss(loss)
    disc = changes.pop("discriminator", MLP((DATA, HIDDEN, 1)))
    return GAN(latent_dim=LATENT, generator=changes.pop("generator", MLP((LATENT, HIDDEN, DATA))), data_shape=(DATA,), loss=loss,
               discriminator=dataclasses.replace(disc, output_activation=loss.d_output), d_optimizer=opt,
               g_optimizer=opt, batch_size=BATCH, updates=Updates(order=order, d_steps=d_steps, reuse_fake=reuse_fake),
               **changes)


def step_inputs(spec: GAN, seed: int, count: int | None = None) -> dict:
    """Random step inputs; with ``count`` every array gains a leading axis of that size."""
    rng = np.random.default_rng(seed)
    lead = () if count is None else (count,)
    d, b = spec.updates.d_steps, spec.batch_size
    return {"real": rng.standard_normal(lead + (d, b, spec.data_dim), dtype=np.float32),
            "noise": rng.standard_normal(lead + (d + 1, b, spec.latent_dim), dtype=np.float32),
            "gp_eps": rng.random(lead + (d, b), dtype=np.float32) if spec.loss.name == "wgan-gp" else None}


def request_of(*argv: str) -> plan.Request:
    """The typed request of a benchmarks.run command line (its flags only)."""
    argv = [str(a) for a in argv]
    return run.request_of(run.make_parser().parse_args(argv), argv)


def planned(*argv: str, backends: dict | None = None) -> tuple[list, list[str], str]:
    """(cells, skip reasons, suite name) that benchmarks.run would plan for these flags, reading no output folder."""
    from common.backend import get_backend

    request = request_of(*argv)
    suite, tasks = plan.resolve_tasks(request)
    backends = backends or {name: get_backend(name) for name in request.backends}
    cells, _, skipped = plan.plan_cells(request, suite, tasks, backends)
    return cells, skipped, suite


@pytest.fixture(scope="module")
def one_torch_thread():
    """PyTorch on one intra-op thread for a test module, restored after it. The suite's models are tiny: on torch's
    default threads their ops wait on OpenMP workers, and on a loaded 2-core machine that made a step up to 60x
    slower (mnist-small, eager: 0.45 s against 7 ms, measured). What these tests check is a property of the
    arithmetic or of the harness, whatever the thread count; a test about thread counts sets its own."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
