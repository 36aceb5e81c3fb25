"""Bit-identity check for behaviour-preserving changes: `python scripts/fingerprint.py OUT.npz [--compare OLD.npz]`.

Trains a fixed set of small configurations (every update order, reuse_fake, several critic steps, every loss
family, spec and native optimisers) in every backend and mode, through the public Trainer interface only:
train_step, train_steps(K), time_phases, save/load, generate and discriminate. Every loss and every final weight
is written to OUT.npz. With --compare, each array is checked for exact (bitwise) equality with an earlier run's
file and the differences are listed; exit 1 if any array differs. ``--mnist`` adds mnist-small with the spec and the
native optimisers (a model large enough for other matmul kernels than the toys'); each backend and mode's arrays are
also printed as one sha256, to compare two runs at a glance.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from common import tasks  # noqa: E402
from common.backend import get_backend  # noqa: E402
from common.checkpoint import atomic_write  # noqa: E402
from common.init import init_weights  # noqa: E402
from common.spec import Updates  # noqa: E402
from common.stream import Stream  # noqa: E402

SEED = 3
STEPS, K = 4, 3


def configs(mnist: bool = False):
    """(name, spec, source): small, every branch of the update schedule and of the losses; with ``mnist``,
    mnist-small (batch 32) with the spec and the native optimisers too."""
    def spec_of(task, **overrides):
        spec, _ = tasks.configure(task, n_examples=10_000, steps=1, **overrides)
        return spec

    gmm2 = tasks.get_task("gmm2").load().source
    parabola = tasks.get_task("parabola").load().source
    out = [("parabola", spec_of("parabola", batch_size=32), parabola),
           ("parabola-native", spec_of("parabola", batch_size=32, optimizer_impl="native"), parabola),
           ("gmm2", spec_of("gmm2", batch_size=32), gmm2),
           ("gmm2-wasserstein", spec_of("gmm2", batch_size=32, loss="wasserstein"), gmm2),
           ("gmm2-wasserstein-native", spec_of("gmm2", batch_size=32, loss="wasserstein", optimizer_impl="native"), gmm2),
           ("gmm2-wgan-gp", spec_of("gmm2", batch_size=32, loss="wgan-gp", d_steps=2), gmm2)]
    for order, d_steps, reuse, loss in (("d_then_g", 3, True, "hinge"), ("g_then_d", 2, True, "least-squares"),
                                         ("g_then_d", 2, False, "minimax"), ("simultaneous", 1, True, "nonsaturating"),
                                         ("simultaneous", 1, False, "minimax")):
        spec = tasks.configure(tasks.get_task("gmm2"), 10_000, steps=1, batch_size=16, loss=loss)[0]
        spec = spec.replace(updates=Updates(order, d_steps, reuse))
        out.append((f"{order}-d{d_steps}-{'reuse' if reuse else 'fresh'}-{loss}", spec, gmm2))
    if mnist:
        digits = tasks.get_task("mnist-small").load().source
        out += [("mnist-small", spec_of("mnist-small", batch_size=32), digits),
                ("mnist-small-native", spec_of("mnist-small", batch_size=32, optimizer_impl="native"), digits)]
    return out


def digest(arrays: dict[str, np.ndarray]) -> str:
    """One sha256 over every array's name, dtype, shape and bytes, in name order."""
    h = hashlib.sha256()
    for key in sorted(arrays):
        value = np.ascontiguousarray(arrays[key])
        h.update(f"{key} {value.dtype} {value.shape}".encode())
        h.update(value.tobytes())
    return h.hexdigest()


def run(backend: str, mode: str, name: str, spec, source) -> dict[str, np.ndarray]:
    module = get_backend(backend)
    if backend == "torch":
        import torch
        # dynamo caches compiled code per function, not per trainer: clear it, or a dozen compiled trainers in
        # one process reach its recompile limit (results do not depend on it).
        torch._dynamo.reset()
    trainer = module.build(spec, init_weights(spec, SEED), device="cpu", mode=mode)
    stream = Stream(spec, source, SEED)
    out = {}
    losses = [list(trainer.train_step(**stream.next().as_kwargs()).values()) for _ in range(STEPS)]
    many = [stream.next() for _ in range(K)]
    stacked = trainer.train_steps(real=np.stack([s.real for s in many]), noise=np.stack([s.noise for s in many]),
                                  gp_eps=None if many[0].gp_eps is None else np.stack([s.gp_eps for s in many]))
    phases = trainer.time_phases(**stream.next().as_kwargs())
    assert set(phases) == {"d_update", "g_update"}
    out["losses"] = np.float64(losses)
    out["losses_k"] = np.stack([np.asarray(v, np.float64) for v in stacked.values()])
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "state.npz")
        trainer.save(path)
        again = module.build(spec, init_weights(spec, SEED + 1), device="cpu", mode=mode)
        again.load(path)
    out["after_load"] = np.float64([list(again.train_step(**stream.next().as_kwargs()).values()) for _ in range(2)])
    for network, values in again.get_weights().items():
        for i, value in enumerate(values):
            out[f"{network}/{i}"] = value
    noise = stream.fixed_noise(16)
    out["generate"] = again.generate(noise)
    out["discriminate"] = again.discriminate(out["generate"])
    return {f"{backend}/{mode}/{name}/{key}": value for key, value in out.items()}


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out")
    parser.add_argument("--compare", help="an earlier OUT.npz: report every array that is not bitwise equal")
    parser.add_argument("--backends", nargs="+", default=["torch", "tf"])
    parser.add_argument("--mnist", action="store_true", help="also mnist-small, spec and native optimisers")
    return parser


def main(argv=None) -> int:
    args = make_parser().parse_args(argv)
    arrays = {}
    for backend in args.backends:
        module = get_backend(backend)
        module.configure(threads=None, deterministic=True)
        for mode in module.MODES:
            these = {}
            for name, spec, source in configs(args.mnist):
                these.update(run(backend, mode, name, spec, source))
            arrays.update(these)
            print(f"{backend} {mode}: {len(configs(args.mnist))} configurations, sha256 {digest(these)}", flush=True)
    atomic_write(args.out, lambda f: np.savez(f, **arrays))
    print(f"{len(arrays)} arrays written to {args.out}")
    if not args.compare:
        return 0
    with np.load(args.compare) as old:
        missing = sorted(set(old.files) ^ set(arrays))
        differ = [key for key in sorted(set(old.files) & set(arrays))
                  if old[key].shape != arrays[key].shape or old[key].tobytes() != arrays[key].tobytes()]
    for key in missing:
        print(f"only in one file: {key}")
    for key in differ:
        print(f"differs: {key}")
    print(f"bitwise equal: {len(arrays) - len(differ) - len(missing)} of {len(set(arrays) | set(old.files))} arrays")
    return 1 if differ or missing else 0


if __name__ == "__main__":
    sys.exit(main())
