"""The spec in TensorFlow / Keras 3: the package-level functions of ``common.backend``.

The environment is set before TensorFlow is imported: oneDNN's CPU kernels change the rounding of
matmuls, so they are off unless the user sets TF_ENABLE_ONEDNN_OPTS; the value in force is recorded.
"""
from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Read once by TensorFlow (a value set after it is read has no effect): versions() records what is in force.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from common.backend import DEVICES, DeviceUnavailableError, check_supported  # noqa: E402

if keras.backend.backend() != "tensorflow":
    raise ImportError(f"backend_tf needs Keras on TensorFlow, but KERAS_BACKEND is {keras.backend.backend()!r}")

NAME = "tf"
MODES = ("eager", "compiled", "xla")
OPTIMIZER_IMPLEMENTATIONS = ("spec", "native")
# Keras has one implementation of each optimiser (no foreach/fused flags): under tf.function its update is part of
# the step's graph, and under XLA fused into the step's cluster.
KERAS_ONE_IMPLEMENTATION = ("Keras' optimizers have one implementation (no foreach/fused kernels); "
                            "allowed: spec, native")

# TF32 would round GPU matmul inputs to 10 mantissa bits; the suite compares float32 with float32.
tf.config.experimental.enable_tensor_float_32_execution(False)

_configured: dict = {}


def versions() -> dict[str, str]:
    build = tf.sysconfig.get_build_info()
    return {
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "TF_ENABLE_ONEDNN_OPTS": os.environ.get("TF_ENABLE_ONEDNN_OPTS", ""),
        "onednn_enabled": _onednn_enabled(),
        "tf32": str(tf.config.experimental.tensor_float_32_execution_enabled()),
        "cuda_build": str(build.get("is_cuda_build", False)),
        "cuda_version": str(build.get("cuda_version", "")),
        "cudnn_version": str(build.get("cudnn_version", "")),
    }


def _onednn_enabled() -> str:
    """Whether TensorFlow actually runs its oneDNN kernels (a private TF call, hence the guard)."""
    try:
        from tensorflow.python.util import _pywrap_util_port

        return str(_pywrap_util_port.IsMklEnabled())
    except (ImportError, AttributeError):
        return "unknown"


def configure(threads: int | None = None, deterministic: bool = True) -> dict:
    """Threads (intra = threads, inter = 1 or 2) and op determinism; returns the settings in force.

    TensorFlow fixes its thread pools when its runtime starts: a later, different request is recorded
    as not applied instead of raising, so calling this twice is safe.
    """
    if threads is not None:
        inter = 1 if threads == 1 else 2
        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(inter)
        except RuntimeError as error:
            _configured["threads_not_applied"] = f"asked intra={threads}, inter={inter}: {error}"
    if deterministic:
        tf.config.experimental.enable_op_determinism()
    else:
        tf.config.experimental.disable_op_determinism()
    _configured.update({
        "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),  # 0 = TF's default
        "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
        "deterministic": deterministic,
        "tf32": tf.config.experimental.tensor_float_32_execution_enabled(),
        "TF_ENABLE_ONEDNN_OPTS": os.environ.get("TF_ENABLE_ONEDNN_OPTS", ""),
    })
    return dict(_configured)


def resolve_device(device: str = "auto") -> str:
    """The TensorFlow device string ("/CPU:0" or "/GPU:0") for "auto", "cpu" or "cuda"."""
    if device not in DEVICES:
        raise ValueError(f"device {device!r} is invalid; allowed: {', '.join(DEVICES)}")
    has_gpu = bool(tf.config.list_physical_devices("GPU"))
    if device == "cuda" and not has_gpu:
        raise DeviceUnavailableError("--device cuda asked for, but tensorflow sees no CUDA GPU on this machine")
    if device == "cpu" or not has_gpu:
        return "/CPU:0"
    return "/GPU:0"


def device_name(device: str = "auto") -> str:
    if resolve_device(device) == "/CPU:0":
        return "cpu"
    gpu = tf.config.list_physical_devices("GPU")[0]
    details = tf.config.experimental.get_device_details(gpu)
    return f"cuda:0 ({details.get('device_name', 'unknown GPU')})"


def build(spec, weights, device: str = "auto", mode: str = "eager"):
    check_supported(sys.modules[__name__], spec, mode,
                    {"native-foreach": KERAS_ONE_IMPLEMENTATION, "native-fused": KERAS_ONE_IMPLEMENTATION})
    from backend_tf.trainer import Trainer

    return Trainer(spec, weights, resolve_device(device), mode)


def sgemm_gflops(n: int = 2048, repeats: int = 3, device: str = "auto") -> float:
    """TensorFlow's own float32 n x n matmul throughput on ``device``: best of ``repeats`` timed calls, in GFLOP/s.

    Each call is read back to the host (a few bytes: one element), so the clock includes the device's work.
    """
    import time

    with tf.device(resolve_device(device)):
        a = tf.random.stateless_normal((n, n), seed=(0, 1))
        b = tf.random.stateless_normal((n, n), seed=(0, 2))
        tf.matmul(a, b)[0, 0].numpy()  # warm-up: thread pool start, kernel selection
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            tf.matmul(a, b)[0, 0].numpy()
            best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def matmul_seconds(m: int, k: int, n: int, dtype: str = "float32", device: str = "auto", repeats: int = 7,
                   inner: int = 50) -> float:
    """One (m x k) @ (k x n) tf.linalg.matmul on ``device``, alone: a tf.function runs ``inner`` of them in a
    tf.range loop (a call's ~0.1 ms overhead would swamp the small products; the loop's own few microseconds per
    iteration stay in, so the floor errs high, never low); the median of ``repeats`` calls / inner."""
    import time

    with tf.device(resolve_device(device)):
        a = tf.random.stateless_normal((m, k), seed=(0, 1), dtype=dtype)
        b = tf.random.stateless_normal((k, n), seed=(0, 2), dtype=dtype)

        @tf.function
        def loop(a, b):
            total = tf.zeros((), dtype=dtype)
            for _ in tf.range(inner):
                total += tf.linalg.matmul(a, b)[0, 0]
            return total
        loop(a, b).numpy()  # warm-up: tracing
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            loop(a, b).numpy()
            times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2] / inner
