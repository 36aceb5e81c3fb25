"""Fixtures and helpers shared by the test files."""
from __future__ import annotations

import pytest

from benchmarks import plan, run, timing


@pytest.fixture
def cheap_peak(monkeypatch):
    """The sgemm peak measured on 128x128 matrices: the 2048 measurement is for real runs."""
    monkeypatch.setattr(timing, "SGEMM_SIZE", 128)


def request_of(*argv: str) -> plan.Request:
    """The typed request of a benchmarks.run command line (its flags only)."""
    argv = [str(a) for a in argv]
    return run.request_of(run.make_parser().parse_args(argv), argv)


def planned(*argv: str, backends: dict | None = None) -> tuple[list, list[str], str]:
    """(cells, skip reasons, suite name) that benchmarks.run would plan for these flags, reading no output folder."""
    from common.backend import get_backend

    request = request_of(*argv)
    suite, names = plan.task_names(request)
    backends = backends or {name: get_backend(name) for name in request.backends}
    cells, _, skipped = plan.plan_cells(request, suite, names, backends)
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


@pytest.fixture(scope="module")
def inductor_in_process():
    """Inductor compiles its C++ kernels in this process instead of a pool of compile workers (its default on
    2 cores: two). The generated code is the same; on 2 shared cores the pool's start-up (a Python process per
    worker, importing torch) competes with the compile itself: measured 26 s against 40-51 s for one WGAN-GP step."""
    import torch._inductor.config

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(torch._inductor.config, "compile_threads", 1)
        yield
