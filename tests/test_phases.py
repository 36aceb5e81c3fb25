"""Trainer.time_phases: one step with its D and G updates timed apart, leaving exactly train_step's state."""
import numpy as np
import pytest

from benchmarks.parity import UniformSource, parity_spec
from common.backend import get_backend
from common.init import init_weights
from common.stream import Stream

CASES = [("nonsaturating", "d_then_g", False), ("minimax", "g_then_d", True), ("wgan-gp", "simultaneous", False)]


def run_pair(backend, mode, loss, order, reuse, steps=2):
    spec = parity_spec(loss, order=order, reuse=reuse)
    weights = init_weights(spec, 3)
    module = get_backend(backend)
    timed, plain = module.build(spec, weights, "cpu", mode), module.build(spec, weights, "cpu", mode)
    stream = Stream(spec, UniformSource(), seed=4)
    phases = []
    for _ in range(steps):
        inputs = stream.next().as_kwargs()
        phases.append(timed.time_phases(**inputs))
        plain.train_step(**inputs)
    return timed, plain, phases


def assert_same_state(a, b):
    wa, wb = a.get_weights(), b.get_weights()
    for net in wa:
        for x, y in zip(wa[net], wb[net]):
            np.testing.assert_array_equal(x, y)
    for opt_a, opt_b in ((a.g_opt, b.g_opt), (a.d_opt, b.d_opt)):
        assert int(np.asarray(opt_a.t)) == int(np.asarray(opt_b.t)) == 2
        for key, values in opt_a.moments().items():
            for x, y in zip(values, opt_b.moments()[key]):
                np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


@pytest.mark.parametrize("loss, order, reuse", CASES)
@pytest.mark.parametrize("backend, mode", [("torch", "eager"), ("tf", "eager")])
def test_eager_phases_leave_train_step_state(backend, mode, loss, order, reuse):
    timed, plain, phases = run_pair(backend, mode, loss, order, reuse)
    assert_same_state(timed, plain)
    for p in phases:
        assert set(p) == {"d_update", "g_update"} and p["d_update"] > 0 and p["g_update"] > 0


@pytest.mark.parametrize("mode", ["compiled", "xla"])
def test_tf_compiled_phases_leave_train_step_state(mode):
    timed, plain, phases = run_pair("tf", mode, "minimax", "g_then_d", True)
    assert_same_state(timed, plain)
    assert all(p["d_update"] > 0 and p["g_update"] > 0 for p in phases)
    # The next step still agrees: time_phases left no stale variable behind.
    inputs = Stream(timed.spec, UniformSource(), seed=5).next().as_kwargs()
    assert timed.train_step(**inputs) == plain.train_step(**inputs)
