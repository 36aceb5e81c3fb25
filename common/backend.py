"""The one interface every backend implements, and the name -> backend registry.

Each backend package (``backend_torch``, ``backend_tf``, ``backend_jax``) exposes at top level:

    NAME: str                                   # "torch", "tf" or "jax"
    MODES: tuple[str, ...]                      # the modes it supports, a subset of common.backend.MODES
    OPTIMIZER_IMPLEMENTATIONS: tuple[str, ...]  # the Optimizer.implementation values it runs (common.spec)
    def build(spec, weights, device="auto", mode="eager") -> Trainer
    def versions() -> dict[str, str]            # framework versions, for the environment record
    def configure(threads=None, deterministic=True) -> dict   # call before build(): intra/inter-op threads
                                                # (None = framework default) and deterministic kernels;
                                                # returns the settings in force, for the environment record
    def device_name(device="auto") -> str       # what "auto"/"cpu"/"cuda" resolves to, e.g. "cpu", "cuda:0 (NVIDIA H100)"
    def sgemm_gflops(n=2048, device="auto") -> float               # optional: its own matmul peak (% of peak)
    def matmul_seconds(m, k, n, dtype="float32", device="auto") -> float   # optional: one product alone (the floor)

A backend's trainer is a subclass of ``common.trainer.Trainer``, which holds the step schedule and everything
else framework-neutral; the backend supplies only the primitives listed there. The harness passes numpy arrays in
and gets numpy arrays and floats out; nothing framework-specific crosses this line. Importing a backend by name happens here, lazily, so ``common`` itself never imports
a framework.
"""
from __future__ import annotations

import importlib
from types import ModuleType
from typing import Protocol

import numpy as np

BACKENDS = {"torch": "backend_torch", "tf": "backend_tf", "jax": "backend_jax"}
# What --backend both means: the two frameworks the suite was built on ("all": every registered backend).
BOTH = ("torch", "tf")
DEVICES = ("auto", "cpu", "cuda")
# eager: op by op. compiled: torch.compile / tf.function / jax.jit. xla: tf.function(jit_compile=True) (TensorFlow
# only: JAX's compiled mode is XLA already).
MODES = ("eager", "compiled", "xla")
# The keys of train_step's result.
STEP_KEYS = ("d_loss", "g_loss", "d_real", "d_fake")


class DeviceUnavailableError(RuntimeError):
    """A device was asked for that this machine does not have (e.g. --device cuda without a GPU)."""


class BackendUnavailableError(DeviceUnavailableError):
    """A backend was asked for whose framework is not installed here (e.g. --backend jax without the jax extra)."""


# The pyproject extra that installs each backend's framework.
EXTRAS = {"torch": "cpu", "tf": "cpu", "jax": "jax"}


class ModeUnsupportedError(RuntimeError):
    """A backend cannot run in the asked mode, or with the asked optimiser implementation, here; the message says why."""


def check_supported(backend, spec, mode: str, reasons: dict[str, str] | None = None) -> None:
    """Raise ValueError for a mode no backend has, ModeUnsupportedError for a mode or optimiser implementation
    that ``backend`` (a backend package) does not run; ``reasons`` may say why, per mode or implementation."""
    if mode not in MODES:
        raise ValueError(f"mode {mode!r} is invalid; allowed: {', '.join(MODES)}")
    reasons = reasons or {}
    if mode not in backend.MODES:
        raise ModeUnsupportedError(reasons.get(mode) or f"mode {mode!r} is not supported by {backend.NAME}; "
                                   f"allowed: {', '.join(backend.MODES)}")
    for opt in (spec.d_optimizer, spec.g_optimizer):
        if opt.implementation not in backend.OPTIMIZER_IMPLEMENTATIONS:
            raise ModeUnsupportedError(reasons.get(opt.implementation) or
                                       f"optimizer implementation {opt.implementation!r} is not supported by "
                                       f"{backend.NAME}; allowed: {', '.join(backend.OPTIMIZER_IMPLEMENTATIONS)}")


class Trainer(Protocol):
    compiled_as: str  # how its mode runs a step, in words (recorded with every run)

    def train_step(self, real: np.ndarray, noise: np.ndarray, gp_eps: np.ndarray | None = None) -> dict[str, float]:
        """One step: the spec's D and G updates on the given randomness (layout in common.stream.StepInputs).

        Returns floats: ``d_loss`` and ``d_real``/``d_fake`` (mean D output on real/fake, as probabilities
        for sigmoid losses, raw critic values otherwise) of the last D update, measured before it was
        applied; ``g_loss`` of the G update, measured before it was applied.
        """
        ...

    def train_steps(self, real: np.ndarray, noise: np.ndarray, gp_eps: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """K steps in one call (like Keras' steps_per_execution): every array gains a leading K axis and each
        result is a (K,) float array. Results and final weights are identical to K train_step calls; compiled
        modes run the K steps inside one compiled function to cut per-step dispatch overhead."""
        ...

    def time_phases(self, real: np.ndarray, noise: np.ndarray, gp_eps: np.ndarray | None = None) -> dict[str, float]:
        """One train_step (same resulting state) with its D update(s) and G update timed apart, in seconds:
        {"d_update": ..., "g_update": ...}."""
        ...

    def generate(self, noise: np.ndarray) -> np.ndarray:
        """(n, latent_dim) -> (n, data_dim) float32."""
        ...

    def discriminate(self, x: np.ndarray) -> np.ndarray:
        """(n, data_dim) -> (n,) float32 D output (probability for sigmoid losses, else critic value)."""
        ...

    def get_weights(self) -> dict[str, list[np.ndarray]]:
        """Neutral layout: {"generator": [k0, b0, ...], "discriminator": [...]}, kernels (in, out)."""
        ...

    def set_weights(self, weights: dict[str, list[np.ndarray]]) -> None: ...

    def state(self) -> dict[str, np.ndarray]:
        """Weights and both optimisers' state (step count, moments) in the neutral layout of common/checkpoint.py."""
        ...

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        """Restore what ``state()`` returned, from either backend."""
        ...

    def save(self, path) -> None:
        """``state()`` and the spec, to one .npz file written atomically (common/checkpoint.py)."""
        ...

    def load(self, path) -> None: ...


def get_backend(name: str) -> ModuleType:
    """The backend package for ``name`` ("torch", "tf" or "jax")."""
    if name not in BACKENDS:
        raise ValueError(f"backend {name!r} is invalid; allowed: {', '.join(BACKENDS)}")
    try:
        return importlib.import_module(BACKENDS[name])
    except ModuleNotFoundError as error:
        if error.name is None or error.name.split(".")[0] in ("common", BACKENDS[name]):
            raise  # the suite's own code is missing: not a framework to install
        raise BackendUnavailableError(f"backend {name!r} needs {error.name}, which is not installed here: "
                                      f"pip install -e \".[{EXTRAS[name]}]\"") from error
