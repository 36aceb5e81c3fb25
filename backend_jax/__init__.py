"""The spec in JAX (jax.numpy, Flax NNX layers, Optax): the package-level functions of ``common.backend``.

Set here, once, before any computation, and recorded by versions():
* ``jax_enable_x64``: float64 runs (``GAN.dtype``) need it, and the spec optimisers compute Adam's bias corrections
  in float64 as PyTorch does in Python doubles. It changes no float32 run: every array the backend makes carries
  an explicit dtype, Python constants are weakly typed (they take the array's dtype), and the contract tests check
  that a float32 trainer's weights, statistics, moments and outputs are float32 throughout.
* matmul and convolution precision: every layer is built with ``precision=HIGHEST`` (models.py). JAX's default on
  GPUs lets float32 matmuls run in TF32 / bf16 passes; the suite compares float32 with float32 (PyTorch and
  TensorFlow switch TF32 off for the same reason). On CPU the default is already full float32.
JAX's PRNG is never used: layers are built with initializers that draw nothing, the weights come from
common/init.py and every random number of a step (noise, GP coefficients, dropout masks) from common/stream.py.
"""
from __future__ import annotations

import os
import sys

import jax  # noqa: E402

from common.backend import DEVICES, DeviceUnavailableError, check_supported  # noqa: E402

jax.config.update("jax_enable_x64", True)

NAME = "jax"
MODES = ("eager", "compiled")
# optax has one implementation of each optimiser (no foreach/fused kernels): under jax.jit it is part of the step.
OPTIMIZER_IMPLEMENTATIONS = ("spec", "native")
OPTAX_ONE_IMPLEMENTATION = ("optax has one implementation of each optimiser (no foreach/fused kernels); "
                            "allowed: spec, native")
XLA_REASON = ("jax's compiled mode is XLA already (jax.jit of the whole step); use --mode compiled, or --mode "
              "eager for op by op")

_configured: dict = {}


def versions() -> dict[str, str]:
    import flax
    import jaxlib
    import optax

    return {
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "flax": flax.__version__,
        "optax": optax.__version__,
        "jax_enable_x64": str(jax.config.jax_enable_x64),
        "matmul_precision": "highest (every layer)",
        "jax_platforms": ",".join(sorted({d.platform for d in jax.devices()})),
        "XLA_FLAGS": os.environ.get("XLA_FLAGS", ""),
    }


def configure(threads: int | None = None, deterministic: bool = True) -> dict:
    """Records the settings in force; changes none. Returns them, for the environment record.

    XLA takes its CPU thread settings and GPU determinism from XLA_FLAGS (``--xla_cpu_multi_thread_eigen=false`` for
    one thread, ``--xla_gpu_deterministic_ops=true``), read once when its runtime starts. TensorFlow's XLA reads the
    same variable, so the backend never sets it (a JAX setting would leak into the TF runs of the same process): a
    thread count asked for is recorded as not applied; set XLA_FLAGS before the run to have it. XLA's CPU kernels are
    deterministic whatever the flags; on a GPU determinism is whatever XLA_FLAGS says (recorded).
    """
    flags = os.environ.get("XLA_FLAGS", "")
    if threads is not None:
        _configured["threads_not_applied"] = (f"asked {threads}: XLA reads its CPU threads from XLA_FLAGS "
                                              "(shared with TensorFlow's XLA), which the suite does not set")
    _configured.update({
        "intra_op_threads": 1 if "--xla_cpu_multi_thread_eigen=false" in flags.split() else 0,  # 0 = XLA's pool
        "inter_op_threads": 0,
        "deterministic": deterministic,
        "gpu_deterministic_ops": "--xla_gpu_deterministic_ops=true" in flags.split(),
        "XLA_FLAGS": flags,
        "jax_enable_x64": jax.config.jax_enable_x64,
    })
    return dict(_configured)


def resolve_device(device: str = "auto"):
    """The jax.Device for "auto", "cpu" or "cuda"."""
    if device not in DEVICES:
        raise ValueError(f"device {device!r} is invalid; allowed: {', '.join(DEVICES)}")
    try:
        gpus = jax.devices("gpu")
    except RuntimeError:  # no GPU backend in this jaxlib, or no GPU
        gpus = []
    if device == "cuda" and not gpus:
        raise DeviceUnavailableError("--device cuda asked for, but jax sees no CUDA GPU on this machine")
    if device == "cpu" or not gpus:
        return jax.devices("cpu")[0]
    return gpus[0]


def device_name(device: str = "auto") -> str:
    resolved = resolve_device(device)
    if resolved.platform == "cpu":
        return "cpu"
    return f"cuda:0 ({resolved.device_kind})"


def build(spec, weights, device: str = "auto", mode: str = "eager"):
    check_supported(sys.modules[__name__], spec, mode,
                    {"xla": XLA_REASON, "native-foreach": OPTAX_ONE_IMPLEMENTATION,
                     "native-fused": OPTAX_ONE_IMPLEMENTATION})
    from backend_jax.trainer import Trainer

    return Trainer(spec, weights, resolve_device(device), mode)


def sgemm_gflops(n: int = 2048, repeats: int = 3, device: str = "auto") -> float:
    """JAX's own float32 n x n matmul throughput on ``device`` (jax.jit, precision HIGHEST as the layers): best of
    ``repeats`` timed calls, in GFLOP/s."""
    import time

    import jax.numpy as jnp
    import numpy as np

    target = resolve_device(device)
    rng = np.random.default_rng(0)
    a, b = (jax.device_put(rng.standard_normal((n, n), dtype=np.float32), target) for _ in range(2))
    matmul = jax.jit(lambda x, y: jnp.matmul(x, y, precision=jax.lax.Precision.HIGHEST))
    matmul(a, b).block_until_ready()  # warm-up: compilation, thread pool start
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        matmul(a, b).block_until_ready()
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def matmul_seconds(m: int, k: int, n: int, dtype: str = "float32", device: str = "auto", repeats: int = 7,
                   inner: int = 50) -> float:
    """One (m x k) @ (k x n) matmul on ``device`` at the layers' precision (HIGHEST), alone: one jax.jit call runs
    ``inner`` of them in a lax.fori_loop (a call's dispatch would swamp the small products; the loop's own cost per
    iteration and the sum that keeps each product live stay in, so the floor errs high, never low); the median of
    ``repeats`` calls / inner."""
    import time

    import jax.numpy as jnp
    import numpy as np

    target = resolve_device(device)
    rng = np.random.default_rng(0)
    a = jax.device_put(rng.standard_normal((m, k)).astype(dtype), target)
    b = jax.device_put(rng.standard_normal((k, n)).astype(dtype), target)

    @jax.jit
    def loop(a, b):
        def body(_, carry):
            a, b, total = carry
            a, b = jax.lax.optimization_barrier((a, b))  # not loop-invariant: XLA must not hoist the product
            return a, b, total + jnp.matmul(a, b, precision=jax.lax.Precision.HIGHEST).sum()
        return jax.lax.fori_loop(0, inner, body, (a, b, jnp.zeros((), a.dtype)))[2]
    loop(a, b).block_until_ready()  # warm-up: compilation
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        loop(a, b).block_until_ready()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2] / inner
