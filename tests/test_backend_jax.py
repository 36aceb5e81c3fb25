"""What only the JAX backend has: jax.jit's whole step with donated buffers and lax.scan's K steps, a PRNG that is
never used, jax_enable_x64 that leaves float32 runs float32, Flax's BatchNorm and optax's optimisers where the suite
departs from their defaults. The contract all backends share is tests/test_backend_contract.py; parity with the
other frameworks is tests/test_parity.py. Small models: every compiled function here compiles in about a second."""
from __future__ import annotations

import numpy as np
import pytest

backend_jax = pytest.importorskip("backend_jax")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from flax import nnx  # noqa: E402

from backend_jax import models, optim  # noqa: E402
from common import tolerances as tol  # noqa: E402
from common.backend import STEP_KEYS, ModeUnsupportedError  # noqa: E402
from common.init import init_weights  # noqa: E402
from common.spec import BatchNorm, Optimizer  # noqa: E402
from common.stream import Stream  # noqa: E402
from tests.test_backend_contract import at, small_spec, step_inputs  # noqa: E402
from tests.test_backend_layers import RandomSource, bn_spec  # noqa: E402


def build(spec, mode="eager", seed=0):
    return backend_jax.build(spec, init_weights(spec, seed), "cpu", mode)


def weight_gap(a, b) -> float:
    wa, wb = a.get_weights(), b.get_weights()
    return max(float(np.abs(x.astype(np.float64) - y).max()) for net in wa for x, y in zip(wa[net], wb[net]))


# ---- modes: eager, the jitted step, K steps in one lax.scan ------------------------------------------------
@pytest.fixture(scope="module")
def three_ways():
    """The WGAN-GP test GAN (second order, two D steps, a reused fake batch): 4 steps eager, 4 compiled single steps,
    and the same 4 as one compiled train_steps call."""
    spec = small_spec("wgan-gp", order="g_then_d", d_steps=2, reuse_fake=True)
    inputs = step_inputs(spec, 13, count=4)
    eager, single, many = build(spec, "eager"), build(spec, "compiled"), build(spec, "compiled")
    donated = single.generator.params[0]
    runs = {"eager": [eager.train_step(**at(inputs, i)) for i in range(4)],
            "single": [single.train_step(**at(inputs, i)) for i in range(4)]}
    stacked = many.train_steps(**inputs)
    runs["many"] = [{key: float(stacked[key][i]) for key in STEP_KEYS} for i in range(4)]
    return {"spec": spec, "inputs": inputs, "eager": eager, "single": single, "many": many, "runs": runs,
            "donated": donated}


def test_compiled_equals_eager(three_ways):
    """jax.jit's whole step against JAX's op-by-op eager: XLA fuses and may reorder sums, as TF's XLA does (MODE_ATOL)."""
    for got, want in zip(three_ways["runs"]["single"], three_ways["runs"]["eager"]):
        for key in STEP_KEYS:
            assert abs(got[key] - want[key]) <= tol.MODE_ATOL["jax"], key
    assert weight_gap(three_ways["single"], three_ways["eager"]) <= tol.MODE_ATOL["jax"]
    assert three_ways["single"].compiled_as.startswith("whole step as one XLA computation")
    assert three_ways["eager"].compiled_as.startswith("eager: op by op")


def test_train_steps_in_one_scan_equal_single_compiled_steps(three_ways):
    """K steps as lax.scan of the step inside one jax.jit: the same results and weights as K jitted single steps
    (two XLA programs: K_STEPS_ATOL; measured bit-identical here, 2026-12-05)."""
    for got, want in zip(three_ways["runs"]["many"], three_ways["runs"]["single"]):
        for key in STEP_KEYS:
            assert abs(got[key] - want[key]) <= tol.K_STEPS_ATOL, key
    assert weight_gap(three_ways["many"], three_ways["single"]) <= tol.K_STEPS_ATOL
    state = three_ways["many"].state()
    assert int(state["opt/discriminator/t"]) == 8 and int(state["opt/generator/t"]) == 4


def test_compiled_step_donates_the_state_and_is_shared_by_trainers_of_a_spec(three_ways):
    """The step's input buffers are donated (XLA updates the state in place), and a second trainer of the same spec
    calls the first one's compiled functions: it compiles nothing (as torch.compile shares its graph), nor after
    load_state (a state handed in from numpy is committed to the device as the step's own output is)."""
    assert three_ways["donated"].is_deleted()
    spec, inputs = three_ways["spec"], three_ways["inputs"]
    other = build(spec, "compiled")
    assert other._step_fn is three_ways["single"]._step_fn
    size = other._step_fn._cache_size()
    other.train_step(**at(inputs, 0))
    other.load_state(three_ways["eager"].state())
    other.train_step(**at(inputs, 1))
    assert other._step_fn._cache_size() == size == 1


def test_time_phases_in_compiled_mode_leaves_train_steps_state(three_ways):
    """The marked step (host callbacks at the phase boundaries) is discarded; the state is train_step's own. On
    three_ways' GAN, whose jitted step is compiled already (only the marked step compiles here)."""
    spec, inputs = three_ways["spec"], three_ways["inputs"]
    timed, plain = build(spec, "compiled"), build(spec, "compiled")
    for i in range(2):
        phases = timed.time_phases(**at(inputs, i))
        plain.train_step(**at(inputs, i))
        assert set(phases) == {"d_update", "g_update"} and min(phases.values()) > 0
    assert weight_gap(timed, plain) == 0.0
    a, b = timed.state(), plain.state()
    assert all(np.array_equal(a[key], b[key]) for key in a)


def test_xla_mode_and_torch_kernels_are_refused_with_a_reason():
    spec = small_spec()
    with pytest.raises(ModeUnsupportedError, match="XLA already"):
        build(spec, "xla")
    fused = spec.replace(d_optimizer=Optimizer(implementation="native-fused"))
    with pytest.raises(ModeUnsupportedError, match="optax has one implementation"):
        build(fused)


# ---- randomness and dtypes ------------------------------------------------------------------------------------
def test_jax_prng_is_never_used(monkeypatch):
    """Building, training (BatchNorm and dropout included) and sampling call none of jax.random: every weight comes
    from common/init.py, every mask from the stream (Flax's layers get NO_RNGS, whose key their initializers ignore).
    Eager runs every line a compiled step traces."""
    def refuse(*args, **kwargs):
        raise AssertionError("jax.random was called")
    for name in ("key", "PRNGKey", "split", "fold_in", "bits", "normal", "uniform", "bernoulli"):
        monkeypatch.setattr(jax.random, name, refuse)
    monkeypatch.setattr(nnx, "Rngs", refuse)
    spec = bn_spec("d_then_g", 1, False)
    stream = Stream(spec, RandomSource(), seed=1)
    trainer = build(spec)
    trainer.train_step(**stream.next().as_kwargs())
    trainer.generate(stream.fixed_noise(3))


def test_x64_leaves_a_float32_run_float32():
    """jax_enable_x64 is on in the backend (float64 runs, float64 bias corrections): a float32 trainer's weights,
    statistics, optimiser moments, samples and results stay float32, with the spec and the native optimisers."""
    assert jax.config.jax_enable_x64
    for implementation in ("spec", "native"):
        spec = bn_spec("d_then_g", 1, False).replace(
            d_optimizer=Optimizer("adam", implementation=implementation),
            g_optimizer=Optimizer("rmsprop", implementation=implementation))
        trainer = build(spec)  # eager: the same dtype promotion as a traced step
        trainer.train_step(**Stream(spec, RandomSource(), seed=2).next().as_kwargs())
        state = trainer.state()
        assert {str(v.dtype) for key, v in state.items() if not key.endswith("/t")} == {"float32"}, implementation
        leaves = jax.tree.leaves(trainer._get_state())
        assert {str(leaf.dtype) for leaf in leaves if jnp.issubdtype(leaf.dtype, jnp.floating)} == {"float32"}
        assert trainer.generate(np.zeros((2, spec.latent_dim), np.float32)).dtype == np.float32


# ---- Flax's BatchNorm and optax's optimisers: where the suite departs from them ---------------------------------------
def test_norm_is_flax_batchnorm_with_exact_variance_in_the_specs_convention():
    """The suite's BatchNorm is nnx.BatchNorm's own call with use_fast_variance=False: outputs and (biased) running
    statistics equal Flax's layer with momentum 1 - the spec's, bit for bit. Flax's default use_fast_variance=True
    computes E[x^2] - E[x]^2, which cancels catastrophically on data far from 0: there it is far off."""
    from backend_jax.models import Norm

    x = jnp.asarray(np.random.default_rng(0).standard_normal((8, 3, 4, 5)).astype(np.float32) * 0.01 + 30.0)
    ours = Norm(BatchNorm(momentum=0.01, eps=1e-3, running_variance="biased"), 5, jnp.float32)
    flax_bn = {fast: nnx.BatchNorm(5, momentum=0.99, epsilon=1e-3, use_fast_variance=fast, rngs=models.NO_RNGS)
               for fast in (False, True)}
    for layer in (ours, *flax_bn.values()):
        layer.scale[...] = jnp.linspace(0.5, 1.5, 5, dtype=jnp.float32)
        layer.bias[...] = jnp.linspace(-1, 1, 5, dtype=jnp.float32)
    exact = flax_bn[False]
    for _ in range(2):
        np.testing.assert_array_equal(ours(x, training=True), exact(x, use_running_average=False))
    np.testing.assert_array_equal(ours.mean[...], exact.mean[...])
    np.testing.assert_array_equal(ours.var[...], exact.var[...])
    np.testing.assert_array_equal(ours(x), exact(x, use_running_average=True))
    fast = flax_bn[True](x, use_running_average=False)
    assert float(jnp.abs(fast - ours(x, training=True)).max()) > 1e-2  # the default's cancellation
    before = ours.var[...]
    ours(x, training=True, update_stats=False)  # a recomputed pass leaves the statistics alone
    np.testing.assert_array_equal(ours.var[...], before)


def test_optax_adam_is_the_spec_adam_and_optax_rmsprop_puts_eps_inside_the_root():
    """optax.adam adds epsilon to the bias-corrected sqrt(v_hat), as PyTorch and the spec do (eps_root 0): with an
    epsilon that matters both end within float32 rounding. optax.rmsprop adds it inside the square root (Keras'
    place): its step differs from the spec's by far more."""
    w0 = np.array([0.3, 0.7, -1.2, 2.0, -0.5, 1e-3], np.float32)

    def run(opt):
        variable = nnx.Variable(jnp.asarray(w0))
        optimizer = optim.make_optimizer(opt, [variable])
        for _ in range(10):
            optimizer.apply([jnp.asarray(np.float32(2.0)) * variable[...] - 1.0])
        return np.asarray(variable[...]), optimizer.t

    for name, settings, agrees in (("adam", {"lr": 0.05, "beta1": 0.9, "eps": 0.1}, True),
                                   ("rmsprop", {"lr": 0.01, "eps": 0.1}, False)):
        (spec_w, t), (native_w, native_t) = (run(Optimizer(name, implementation=i, **settings)) for i in ("spec", "native"))
        assert t == native_t == 10
        gap = float(np.abs(spec_w - native_w).max())
        assert (gap <= tol.OPTIMIZER_REFERENCE_ATOL) if agrees else (gap > 1e-3), (name, gap)


def test_versions_and_configure_record_settings():
    info = backend_jax.versions()
    assert info["jax"] == jax.__version__ and info["jax_enable_x64"] == "True"
    assert info["matmul_precision"].startswith("highest")
    first = backend_jax.configure(threads=None, deterministic=True)
    assert backend_jax.configure(threads=None, deterministic=True) == first  # safe to call twice
    assert first["deterministic"] is True and first["jax_enable_x64"] is True
    assert backend_jax.device_name("cpu") == "cpu"


def test_a_missing_framework_is_bad_input_naming_its_extra(monkeypatch):
    """Without the jax extra installed, asking for the backend is one line that says what to install (the harness
    turns it into exit 2), not a traceback."""
    import common.backend as registry

    def missing(name):
        raise ModuleNotFoundError("No module named 'jax'", name="jax")
    monkeypatch.setattr(registry.importlib, "import_module", missing)
    with pytest.raises(registry.BackendUnavailableError, match=r'pip install -e "\.\[jax\]"'):
        registry.get_backend("jax")
    assert issubclass(registry.BackendUnavailableError, registry.DeviceUnavailableError)  # cli.INPUT_ERRORS
