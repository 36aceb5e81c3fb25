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
    suite, tasks = plan.resolve_tasks(request)
    backends = backends or {name: get_backend(name) for name in request.backends}
    cells, _, skipped = plan.plan_cells(request, suite, tasks, backends)
    return cells, skipped, suite
