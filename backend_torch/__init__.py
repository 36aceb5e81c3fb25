"""The spec in PyTorch: the package-level functions of ``common.backend``."""
from __future__ import annotations

import os
import sys

# cuBLAS needs this set before CUDA starts for deterministic matmuls (torch.use_deterministic_algorithms).
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

import torch  # noqa: E402

from common.backend import DEVICES, DeviceUnavailableError, check_supported  # noqa: E402

NAME = "torch"
MODES = ("eager", "compiled")
OPTIMIZER_IMPLEMENTATIONS = ("spec", "native", "native-foreach", "native-fused")

XLA_REASON = ("torch has no XLA mode in this suite (torch_xla is not used); "
              "use --mode eager or --mode compiled (torch.compile)")

# TF32 would round GPU matmul inputs to 10 mantissa bits; the suite compares float32 with float32.
torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False

_configured: dict = {}


def versions() -> dict[str, str]:
    return {
        "torch": torch.__version__,
        "cuda_build": str(torch.version.cuda or ""),
        "cudnn_version": str(torch.backends.cudnn.version() or "") if torch.backends.cudnn.is_available() else "",
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "mkl": str(torch.backends.mkl.is_available()),
        "mkldnn": str(torch.backends.mkldnn.is_available()),
        "openmp": str(torch.backends.openmp.is_available()),
        "tf32": str(torch.backends.cuda.matmul.allow_tf32),
    }


def configure(threads: int | None = None, deterministic: bool = True) -> dict:
    """Threads (intra = threads, inter = 1) and deterministic algorithms; returns the settings in force.

    torch fixes its inter-op pool once any parallel work has started: a later, different request is
    recorded as not applied instead of raising, so calling this twice is safe.
    """
    if threads is not None:
        torch.set_num_threads(threads)
        inter = 1  # a GAN step is a chain of dependent ops: the inter-op pool has nothing to overlap
        if torch.get_num_interop_threads() != inter:
            try:
                torch.set_num_interop_threads(inter)
            except RuntimeError as error:
                _configured["threads_not_applied"] = f"asked inter={inter}: {error}"
    torch.use_deterministic_algorithms(deterministic)
    _configured.update({
        "intra_op_threads": torch.get_num_threads(),
        "inter_op_threads": torch.get_num_interop_threads(),
        "deterministic": torch.are_deterministic_algorithms_enabled(),
        "tf32": torch.backends.cuda.matmul.allow_tf32,
        "CUBLAS_WORKSPACE_CONFIG": os.environ.get("CUBLAS_WORKSPACE_CONFIG", ""),
    })
    return dict(_configured)


def resolve_device(device: str = "auto") -> torch.device:
    """The torch device for "auto", "cpu" or "cuda"."""
    if device not in DEVICES:
        raise ValueError(f"device {device!r} is invalid; allowed: {', '.join(DEVICES)}")
    has_gpu = torch.cuda.is_available()
    if device == "cuda" and not has_gpu:
        raise DeviceUnavailableError("--device cuda asked for, but torch sees no CUDA GPU on this machine")
    if device == "cpu" or not has_gpu:
        return torch.device("cpu")
    return torch.device("cuda", 0)


def device_name(device: str = "auto") -> str:
    resolved = resolve_device(device)
    if resolved.type == "cpu":
        return "cpu"
    return f"cuda:0 ({torch.cuda.get_device_name(0)})"


def build(spec, weights, device: str = "auto", mode: str = "eager"):
    check_supported(sys.modules[__name__], spec, mode, {"xla": XLA_REASON})
    from backend_torch.trainer import Trainer

    return Trainer(spec, weights, resolve_device(device), mode)


def sgemm_gflops(n: int = 2048, repeats: int = 3, device: str = "auto") -> float:
    """torch's own float32 n x n matmul throughput on ``device``: best of ``repeats`` timed calls, in GFLOP/s."""
    import time

    target = resolve_device(device)
    generator = torch.Generator(device="cpu").manual_seed(0)
    a = torch.randn(n, n, generator=generator).to(target)
    b = torch.randn(n, n, generator=generator).to(target)
    out = torch.empty(n, n, device=target)
    torch.mm(a, b, out=out)  # warm-up: thread pool start, page faults, cuBLAS handle
    best = float("inf")
    for _ in range(repeats):
        _synchronize(target)
        start = time.perf_counter()
        torch.mm(a, b, out=out)
        _synchronize(target)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_seconds(m: int, k: int, n: int, dtype: str = "float32", device: str = "auto", repeats: int = 20) -> float:
    """One (m x k) @ (k x n) torch.mm on ``device``, alone: the median of ``repeats`` timed calls (the matmul part
    of a step's floor, benchmarks/timing.py)."""
    import time

    target = resolve_device(device)
    generator = torch.Generator(device="cpu").manual_seed(0)
    a = torch.randn(m, k, generator=generator, dtype=getattr(torch, dtype)).to(target)
    b = torch.randn(k, n, generator=generator, dtype=getattr(torch, dtype)).to(target)
    torch.mm(a, b)  # warm-up
    times = []
    for _ in range(repeats):
        _synchronize(target)
        start = time.perf_counter()
        torch.mm(a, b)
        _synchronize(target)
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]
