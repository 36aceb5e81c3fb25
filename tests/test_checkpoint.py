"""The one writer and the trainer-state format (common/checkpoint.py): atomic, one permission policy, one layout."""
from __future__ import annotations

import os
import stat

import numpy as np
import pytest

from benchmarks import store
from common import checkpoint
from common.backend import get_backend
from common.init import init_weights
from common.spec import GAN, MLP, Optimizer

SPEC = GAN(latent_dim=3, generator=MLP((3, 8, 4)), discriminator=MLP((4, 8, 1), output_activation="sigmoid"),
           data_shape=(4,), batch_size=4, d_optimizer=Optimizer("adam", lr=1e-2), g_optimizer=Optimizer("rmsprop", lr=1e-2))


def trained(backend: str, seed: int = 0, steps: int = 2):
    trainer = get_backend(backend).build(SPEC, init_weights(SPEC, seed), device="cpu", mode="eager")
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        trainer.train_step(rng.standard_normal((1, 4, 4), dtype=np.float32), rng.standard_normal((2, 4, 3), dtype=np.float32))
    return trainer


def expected_keys(spec: GAN) -> set[str]:
    """The documented layout, written out from the spec alone."""
    keys = set()
    for network, mlp, opt in (("generator", spec.generator, spec.g_optimizer),
                              ("discriminator", spec.discriminator, spec.d_optimizer)):
        count = 2 * len(mlp.layer_shapes)
        keys |= {f"{network}/{i}" for i in range(count)} | {f"opt/{network}/t"}
        for moment in (("m", "v") if opt.name == "adam" else ("v",)):
            keys |= {f"opt/{network}/{moment}/{i}" for i in range(count)}
    return keys


@pytest.mark.parametrize("backend", ["torch", "tf"])
def test_state_has_the_documented_neutral_layout(backend):
    state = trained(backend).state()
    assert set(state) == expected_keys(SPEC)
    assert int(state["opt/generator/t"]) == 2 and int(state["opt/discriminator/t"]) == 2
    for network, mlp in (("generator", SPEC.generator), ("discriminator", SPEC.discriminator)):
        for i, (fan_in, fan_out) in enumerate(mlp.layer_shapes):
            assert state[f"{network}/{2 * i}"].shape == (fan_in, fan_out)  # kernels (in, out) in both backends
            assert state[f"opt/{network}/v/{2 * i}"].shape == (fan_in, fan_out)
            assert state[f"{network}/{2 * i + 1}"].shape == (fan_out,)


@pytest.mark.parametrize("source, target", [("torch", "tf"), ("tf", "torch")])
def test_state_moves_between_backends_exactly(source, target):
    state = trained(source).state()
    other = get_backend(target).build(SPEC, init_weights(SPEC, 9), device="cpu", mode="eager")
    other.load_state(state)
    back = other.state()
    assert set(back) == set(state)
    for key, value in state.items():
        np.testing.assert_array_equal(back[key], value, err_msg=key)


def test_a_checkpoint_is_replaced_atomically(tmp_path, monkeypatch):
    """A save that dies half-way leaves the previous checkpoint whole and loadable, and no temp file."""
    path = tmp_path / "ckpt.npz"
    first = trained("torch", steps=1)
    first.save(path)
    before = path.read_bytes()

    def dies_half_way(file, **arrays):
        file.write(b"PK\x03\x04 half a zip")
        raise OSError("disk full")
    monkeypatch.setattr(np, "savez", dies_half_way)
    with pytest.raises(OSError, match="disk full"):
        trained("torch", steps=3).save(path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.npz"]
    again = get_backend("torch").build(SPEC, init_weights(SPEC, 5), device="cpu", mode="eager")
    again.load(path)
    assert int(again.state()["opt/generator/t"]) == 1


def test_every_file_gets_one_permission_policy(tmp_path):
    """Checkpoints, store checkpoints and results: 0666 less the umask, like any file the user makes."""
    umask = os.umask(0o022)
    os.umask(umask)
    trainer = trained("torch", steps=1)
    trainer.save(tmp_path / "ckpt.npz")
    store.save_checkpoint(tmp_path, "cell", trainer, {"d_loss": np.zeros(1)}, {"steps_done": 1})
    store.write_history(tmp_path, "run", {"d_loss": np.zeros(1)})
    files = [tmp_path / "ckpt.npz", store.checkpoint_path(tmp_path, "cell"), tmp_path / "histories" / "run.npz"]
    assert {stat.S_IMODE(f.stat().st_mode) for f in files} == {0o666 & ~umask}


def test_a_checkpoint_of_another_gan_is_refused_naming_the_file(tmp_path):
    path = tmp_path / "ckpt.npz"
    trained("tf").save(path)
    wider = SPEC.replace(generator=MLP((3, 16, 4)))
    trainer = get_backend("torch").build(wider, init_weights(wider, 0), device="cpu", mode="eager")
    with pytest.raises(ValueError, match=f"checkpoint {path} does not fit this GAN: generator"):
        trainer.load(path)
    other_optimizer = SPEC.replace(g_optimizer=Optimizer("adam"))
    with pytest.raises(ValueError, match="g_optimizer.name: checkpoint 'rmsprop', this trainer 'adam'"):
        checkpoint.load(path, other_optimizer)
