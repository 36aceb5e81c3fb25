"""The PyTorch backend on its own: forward passes, losses, optimisers, update orders, checkpoints, modes.

Every expected value is computed independently (numpy in float64, or plain torch written the way the seeds
write it), never by the backend under test.
"""
from __future__ import annotations

import time

import numpy as np
import pytest
import torch

import backend_torch
from backend_torch import losses, models, optim
from common.backend import DeviceUnavailableError, ModeUnsupportedError
from common.init import init_weights
from common.spec import GAN, MLP, Loss, Optimizer, Updates
from common.tolerances import FORWARD_ATOL, LOSS_ATOL

BATCH = 8


def small_spec(loss="minimax", order="d_then_g", d_steps=1, reuse_fake=False, opt=None, **mlp):
    """A parabola-shaped GAN, narrower so the tests stay fast."""
    opt = opt or Optimizer(lr=1e-3)
    spec = GAN(latent_dim=5, generator=MLP((5, 16, 15), **mlp), discriminator=MLP((15, 16, 1), output_activation="sigmoid"),
               data_shape=(15,), batch_size=BATCH, d_optimizer=opt, g_optimizer=opt,
               updates=Updates(order=order, d_steps=d_steps, reuse_fake=reuse_fake),
               loss=Loss(name="nonsaturating"), init="torch_default")
    return spec.with_loss(Loss(name=loss))


def step_inputs(spec, steps=None, seed=1):
    """Random (real, noise, gp_eps) shaped for one train_step, or for train_steps with a leading axis."""
    rng = np.random.default_rng(seed)
    d, lead = spec.updates.d_steps, () if steps is None else (steps,)
    real = rng.standard_normal(lead + (d, BATCH, spec.data_dim)).astype(np.float32)
    noise = rng.standard_normal(lead + (d + 1, BATCH, spec.latent_dim)).astype(np.float32)
    gp_eps = rng.random(lead + (d, BATCH)).astype(np.float32) if spec.loss.name == "wgan-gp" else None
    return real, noise, gp_eps


def build(spec, mode="eager", seed=0):
    return backend_torch.build(spec, init_weights(spec, seed), device="cpu", mode=mode)


def assert_weights_equal(a, b, atol=0.0):
    for network in ("generator", "discriminator"):
        assert len(a[network]) == len(b[network])
        for x, y in zip(a[network], b[network]):
            np.testing.assert_allclose(x, y, rtol=0, atol=atol)


# ---- models -----------------------------------------------------------------------------------------
def numpy_forward(weights, mlp: MLP, apply_output=True):
    """The MLP in float64 numpy, from neutral weights (kernels (in, out))."""
    def act(name, x):
        return {"relu": lambda: np.maximum(x, 0), "leaky_relu": lambda: np.where(x > 0, x, mlp.leaky_slope * x),
                "tanh": lambda: np.tanh(x), "sigmoid": lambda: 1 / (1 + np.exp(-x)), "linear": lambda: x}[name]()

    def forward(x):
        x = np.asarray(x, np.float64)
        layers = len(weights) // 2
        for i in range(layers):
            x = x @ weights[2 * i].astype(np.float64) + weights[2 * i + 1].astype(np.float64)
            if i < layers - 1:
                x = act(mlp.hidden_activation, x)
            elif apply_output:
                x = act(mlp.output_activation, x)
        return x
    return forward


def test_weights_round_trip_exactly():
    spec = small_spec()
    weights = init_weights(spec, 3)
    trainer = build(spec)
    trainer.set_weights(weights)
    assert_weights_equal(trainer.get_weights(), weights)
    assert trainer.get_weights()["generator"][0].shape == (5, 16)  # neutral kernel (in, out)


def test_forward_matches_numpy():
    spec = small_spec(hidden_activation="leaky_relu", output_activation="tanh")
    trainer = build(spec)
    weights = trainer.get_weights()
    rng = np.random.default_rng(0)
    z = rng.standard_normal((32, 5)).astype(np.float32)
    x = rng.standard_normal((32, 15)).astype(np.float32)
    g = numpy_forward(weights["generator"], spec.generator)(z)
    np.testing.assert_allclose(trainer.generate(z), g, rtol=0, atol=FORWARD_ATOL)
    # D's network gives logits; discriminate() reports sigmoid(logits) for a sigmoid loss.
    logits = numpy_forward(weights["discriminator"], spec.discriminator, apply_output=False)(x)[:, 0]
    np.testing.assert_allclose(trainer.discriminate(x), 1 / (1 + np.exp(-logits)), rtol=0, atol=FORWARD_ATOL)
    assert np.abs(g).max() <= 1 and (g < 0).any()  # tanh applied, leaky slope kept negatives


def test_leaky_slope_is_the_specs():
    net = models.build_mlp(MLP((3, 4, 1), hidden_activation="leaky_relu", leaky_slope=0.2))
    assert [m.negative_slope for m in net if isinstance(m, torch.nn.LeakyReLU)] == [0.2]


# ---- losses -----------------------------------------------------------------------------------------
def numpy_losses(name, l_r, l_f, d_average=False, penalty=0.0, gp_weight=10.0):
    """(L_D, L_G) in float64 from the brief's formulas."""
    def sp(x):
        return np.log1p(np.exp(x))
    if name in ("minimax", "nonsaturating"):
        real, fake = sp(-l_r).mean(), sp(l_f).mean()
        g = -sp(l_f).mean() if name == "minimax" else sp(-l_f).mean()
    elif name in ("wasserstein", "wgan-gp"):
        real, fake, g = -l_r.mean(), l_f.mean(), -l_f.mean()
    elif name == "hinge":
        real, fake, g = np.maximum(1 - l_r, 0).mean(), np.maximum(1 + l_f, 0).mean(), -l_f.mean()
    else:
        real, fake, g = 0.5 * ((l_r - 1) ** 2).mean(), 0.5 * (l_f ** 2).mean(), 0.5 * ((l_f - 1) ** 2).mean()
    d = (real + fake) / 2 if d_average else real + fake
    if name == "wgan-gp":
        d += gp_weight * penalty
    return d, g


@pytest.mark.parametrize("name", ["minimax", "nonsaturating", "wasserstein", "wgan-gp", "hinge", "least-squares"])
@pytest.mark.parametrize("d_average", [False, True])
def test_losses_match_formulas(name, d_average):
    l_r = np.array([-3.0, -0.5, 0.0, 0.7, 2.5, 12.0], np.float32)  # large |x|: softplus must not overflow
    l_f = np.array([1.5, -2.0, 0.3, -0.1, -9.0, 0.05], np.float32)
    spec = Loss(name=name, d_average=d_average, gp_weight=3.0)
    penalty = torch.tensor(0.25) if name == "wgan-gp" else None
    d = losses.d_loss(spec, torch.from_numpy(l_r), torch.from_numpy(l_f), penalty)
    g = losses.g_loss(spec, torch.from_numpy(l_f))
    want_d, want_g = numpy_losses(name, l_r.astype(np.float64), l_f.astype(np.float64), d_average, 0.25, 3.0)
    assert abs(d.item() - want_d) <= LOSS_ATOL
    assert abs(g.item() - want_g) <= LOSS_ATOL


def test_gradient_penalty_matches_analytic_per_example():
    """For D = w2 . relu(W1 x + b1) + b2, dD/dx = W1^T (relu'(h) * w2): the penalty in numpy, per example."""
    spec = small_spec("wgan-gp")
    disc = models.build_discriminator(spec)
    weights = init_weights(spec, 5)["discriminator"]
    models.load_weights(disc, weights)
    rng = np.random.default_rng(2)
    real, fake = rng.standard_normal((2, BATCH, 15)).astype(np.float32)
    eps = rng.random(BATCH).astype(np.float32)

    def numpy_terms(eps):
        k1, b1, k2 = (w.astype(np.float64) for w in weights[:3])
        x_hat = eps[:, None] * real + (1 - eps[:, None]) * fake
        grad = ((x_hat @ k1 + b1) > 0) * k2[:, 0] @ k1.T
        return (np.sqrt((grad ** 2).sum(1) + 1e-12) - 1) ** 2

    def penalty(eps):
        return losses.gradient_penalty(disc, torch.from_numpy(real), torch.from_numpy(fake), torch.from_numpy(eps))

    assert abs(penalty(eps).item() - numpy_terms(eps).mean()) <= LOSS_ATOL
    # Changing one example's eps changes only that example's term of the mean.
    changed = eps.copy()
    changed[3] = 1 - eps[3]
    terms, changed_terms = numpy_terms(eps), numpy_terms(changed)
    assert np.count_nonzero(terms != changed_terms) == 1
    shift = (penalty(changed) - penalty(eps)).item() * BATCH
    assert abs(shift - (changed_terms[3] - terms[3])) <= 1e-5
    assert abs(shift) > 1e-4  # the change was visible at all


def test_wgan_gp_update_differs_from_wasserstein():
    real, noise, gp_eps = step_inputs(small_spec("wgan-gp"))
    grads = {}
    for name in ("wasserstein", "wgan-gp"):
        trainer = build(small_spec(name))
        fake = trainer.generate(noise[0])
        eps = torch.from_numpy(gp_eps[0])
        *_, g = trainer.d_gradients(torch.from_numpy(real[0]), torch.from_numpy(fake), eps)
        grads[name] = torch.cat([x.flatten() for x in g])
    assert (grads["wgan-gp"] - grads["wasserstein"]).abs().max() > 1e-3


# ---- optimisers -------------------------------------------------------------------------------------
@pytest.mark.parametrize("opt", [Optimizer("adam", lr=1e-3), Optimizer("adam", lr=2e-4, beta1=0.5),
                                 Optimizer("adam", lr=1e-4, beta1=0.0, beta2=0.9), Optimizer("rmsprop", lr=5e-5)])
def test_spec_optimizer_equals_torch_optim_exactly(opt):
    """Tolerance: exact. The spec update is torch's single-tensor CPU update op for op."""
    rng = np.random.default_rng(0)
    start = [torch.from_numpy(rng.standard_normal(s).astype(np.float32)) for s in [(16, 5), (16,)]]
    mine = [p.clone() for p in start]
    theirs = [p.clone().requires_grad_(True) for p in start]
    spec_opt = optim.make_optimizer(opt, mine)
    native = optim.make_optimizer(Optimizer(**{**opt.__dict__, "implementation": "native"}), theirs)
    assert isinstance(spec_opt, (optim.SpecAdam, optim.SpecRMSprop)) and isinstance(native, optim.NativeOptimizer)
    for _ in range(20):
        # Gradients spanning magnitudes, some tiny, where eps matters.
        grads = [torch.from_numpy((rng.standard_normal(p.shape) * 10.0 ** rng.integers(-9, 1, p.shape))
                                  .astype(np.float32)) for p in start]
        spec_opt.apply(grads)
        native.apply(grads)
    assert spec_opt.t == native.t == 20
    for a, b in zip(mine, theirs):
        assert torch.equal(a, b.detach())
        assert not torch.equal(a, start[0] if a.shape == start[0].shape else start[1])
    for key in spec_opt.moments():
        for a, b in zip(spec_opt.moments()[key], native.moments()[key]):
            assert torch.equal(a, b)


# ---- update orders, against plain torch written the seeds' way -------------------------------------
def plain_torch(spec, weights):
    """G (with output activation) and D (with its sigmoid), torch.optim.Adam, losses written with logs."""
    def net(mlp, w):
        layers = []
        for i, (fan_in, fan_out) in enumerate(mlp.layer_shapes):
            linear = torch.nn.Linear(fan_in, fan_out)
            with torch.no_grad():
                linear.weight.copy_(torch.from_numpy(w[2 * i].T.copy()))
                linear.bias.copy_(torch.from_numpy(w[2 * i + 1]))
            layers += [linear, torch.nn.ReLU()]
        layers[-1] = torch.nn.Sigmoid() if mlp.output_activation == "sigmoid" else torch.nn.Identity()
        return torch.nn.Sequential(*layers)
    g, d = net(spec.generator, weights["generator"]), net(spec.discriminator, weights["discriminator"])
    opt = spec.g_optimizer
    g_opt = torch.optim.Adam(g.parameters(), lr=opt.lr, betas=(opt.beta1, opt.beta2), eps=opt.eps)
    d_opt = torch.optim.Adam(d.parameters(), lr=opt.lr, betas=(opt.beta1, opt.beta2), eps=opt.eps)
    return g, d, g_opt, d_opt


def neutral(g, d):
    return {"generator": models.export_weights(g), "discriminator": models.export_weights(d)}


def d_loss_logs(d, real, fake):
    return -torch.mean(torch.log(d(real)) + torch.log(1.0 - d(fake)))


def test_g_then_d_reuse_fake_matches_seed_000_loop():
    spec = small_spec("minimax", order="g_then_d", reuse_fake=True)
    real, noise, _ = step_inputs(spec, steps=3)
    trainer = build(spec)
    G, D, opt_G, opt_D = plain_torch(spec, trainer.get_weights())
    for step in range(3):
        result = trainer.train_step(real[step], noise[step])
        artist_paintings = torch.from_numpy(real[step][0])
        G_paintings = G(torch.from_numpy(noise[step][0]))  # seed 000: G first, on the one noise batch
        G_loss = torch.mean(torch.log(1.0 - D(G_paintings)))
        opt_G.zero_grad()
        G_loss.backward()
        opt_G.step()
        prob_artist0, prob_artist1 = D(artist_paintings), D(G_paintings.detach())  # the fake made before G's step
        D_loss = -torch.mean(torch.log(prob_artist0) + torch.log(1.0 - prob_artist1))
        opt_D.zero_grad()
        D_loss.backward()
        opt_D.step()
        assert abs(result["g_loss"] - G_loss.item()) <= LOSS_ATOL
        assert abs(result["d_loss"] - D_loss.item()) <= LOSS_ATOL
        assert abs(result["d_real"] - prob_artist0.mean().item()) <= LOSS_ATOL
        assert abs(result["d_fake"] - prob_artist1.mean().item()) <= LOSS_ATOL
    # log(sigmoid) vs softplus differ in the last bits only; Adam keeps that at the last bits of a step.
    assert_weights_equal(trainer.get_weights(), neutral(G, D), atol=1e-6)


def test_d_then_g_matches_plain_loop():
    spec = small_spec("nonsaturating", order="d_then_g", d_steps=2)
    real, noise, _ = step_inputs(spec, steps=2)
    trainer = build(spec)
    G, D, opt_G, opt_D = plain_torch(spec, trainer.get_weights())
    for step in range(2):
        result = trainer.train_step(real[step], noise[step])
        for k in range(2):  # D update k on real[k] and G(noise[k])
            with torch.no_grad():
                fake = G(torch.from_numpy(noise[step][k]))
            D_loss = d_loss_logs(D, torch.from_numpy(real[step][k]), fake)
            opt_D.zero_grad()
            D_loss.backward()
            opt_D.step()
        G_loss = -torch.mean(torch.log(D(G(torch.from_numpy(noise[step][2])))))  # G on noise[d]
        opt_G.zero_grad()
        G_loss.backward()
        opt_G.step()
        assert abs(result["d_loss"] - D_loss.item()) <= LOSS_ATOL
        assert abs(result["g_loss"] - G_loss.item()) <= LOSS_ATOL
    assert_weights_equal(trainer.get_weights(), neutral(G, D), atol=1e-6)


def test_simultaneous_takes_both_gradients_at_the_same_weights():
    spec = small_spec("nonsaturating", order="simultaneous")
    real, noise, _ = step_inputs(spec, steps=2)
    trainer = build(spec)
    G, D, opt_G, opt_D = plain_torch(spec, trainer.get_weights())
    for step in range(2):
        result = trainer.train_step(real[step], noise[step])
        D_loss = d_loss_logs(D, torch.from_numpy(real[step][0]), G(torch.from_numpy(noise[step][0])).detach())
        G_loss = -torch.mean(torch.log(D(G(torch.from_numpy(noise[step][1])))))
        # Both gradients at the current weights, each only into its own network; then both applied.
        for params, loss in ((list(D.parameters()), D_loss), (list(G.parameters()), G_loss)):
            for p, grad in zip(params, torch.autograd.grad(loss, params)):
                p.grad = grad
        opt_D.step()
        opt_G.step()
        assert abs(result["d_loss"] - D_loss.item()) <= LOSS_ATOL
        assert abs(result["g_loss"] - G_loss.item()) <= LOSS_ATOL
    assert_weights_equal(trainer.get_weights(), neutral(G, D), atol=1e-6)


def test_wasserstein_clips_d_only():
    spec = small_spec("wasserstein", opt=Optimizer("rmsprop", lr=5e-2))
    trainer = build(spec)
    before = trainer.get_weights()
    assert max(np.abs(w).max() for w in before["discriminator"]) > spec.loss.clip  # the test can fail
    trainer.train_step(*step_inputs(spec)[:2])
    after = trainer.get_weights()
    assert max(np.abs(w).max() for w in after["discriminator"]) <= spec.loss.clip
    assert max(np.abs(w).max() for w in after["generator"]) > spec.loss.clip


# ---- train_steps, checkpoints -----------------------------------------------------------------------
@pytest.mark.parametrize("loss", ["wgan-gp", "hinge"])
def test_train_steps_equals_repeated_train_step(loss):
    spec = small_spec(loss, order="g_then_d", d_steps=2, reuse_fake=True)
    real, noise, gp_eps = step_inputs(spec, steps=4)
    one, many = build(spec), build(spec)
    singles = [one.train_step(real[i], noise[i], None if gp_eps is None else gp_eps[i]) for i in range(4)]
    stacked = many.train_steps(real, noise, gp_eps)
    for key in ("d_loss", "g_loss", "d_real", "d_fake"):
        assert stacked[key].shape == (4,)
        assert stacked[key].tolist() == [np.float32(s[key]) for s in singles]
    assert_weights_equal(one.get_weights(), many.get_weights())


@pytest.mark.parametrize("opt", [Optimizer("adam", lr=1e-3), Optimizer("adam", lr=1e-3, implementation="native"),
                                 Optimizer("rmsprop", lr=1e-3, implementation="native")])
def test_checkpoint_resume_is_exact(tmp_path, opt):
    spec = small_spec("nonsaturating", opt=opt)
    real, noise, _ = step_inputs(spec, steps=6)
    straight = build(spec)
    straight.train_steps(real, noise)
    first = build(spec)
    first.train_steps(real[:3], noise[:3])
    path = tmp_path / "ckpt.npz"
    first.save(path)
    resumed = build(spec, seed=99)  # different start: everything must come from the checkpoint
    resumed.load(path)
    resumed.train_steps(real[3:], noise[3:])
    assert_weights_equal(straight.get_weights(), resumed.get_weights())
    with np.load(path) as data:
        assert int(data["opt/generator/t"]) == 3 and data["opt/generator/v/0"].shape == (5, 16)
    assert [p for p in tmp_path.iterdir()] == [path]  # no temp file left behind


def test_checkpoint_of_another_architecture_is_refused(tmp_path):
    path = tmp_path / "ckpt.npz"
    build(small_spec()).save(path)
    other = small_spec().replace(generator=MLP((5, 32, 15)))
    with pytest.raises(ValueError, match="generator"):
        build(other).load(path)


# ---- modes and devices ------------------------------------------------------------------------------
def test_compiled_equals_eager():
    """One loss (torch.compile needs tens of seconds per graph on 2 cores); wgan-gp's double backward is
    exercised in eager only here. Tolerance: 1e-6 abs on losses and weights after 3 steps."""
    spec = small_spec("minimax", order="g_then_d", reuse_fake=True)
    real, noise, _ = step_inputs(spec, steps=3)
    eager, compiled = build(spec), build(spec, mode="compiled")
    started = time.perf_counter()
    first = compiled.train_step(real[0], noise[0])
    print(f"torch.compile first call: {time.perf_counter() - started:.1f} s")
    rest = compiled.train_steps(real[1:], noise[1:])
    want = eager.train_steps(real, noise)
    got = {key: np.concatenate([[first[key]], rest[key]]) for key in want}
    for key in want:
        np.testing.assert_allclose(got[key], want[key], rtol=0, atol=1e-6)
    assert_weights_equal(compiled.get_weights(), eager.get_weights(), atol=1e-6)
    # A second compiled trainer reuses the compiled graphs (no recompile) but must train its own weights.
    other_eager, other_compiled = build(spec, seed=7), build(spec, mode="compiled", seed=7)
    want, got = other_eager.train_steps(real, noise), other_compiled.train_steps(real, noise)
    np.testing.assert_allclose(got["d_loss"], want["d_loss"], rtol=0, atol=1e-6)
    assert_weights_equal(other_compiled.get_weights(), other_eager.get_weights(), atol=1e-6)
    assert np.abs(other_compiled.get_weights()["generator"][0] - compiled.get_weights()["generator"][0]).max() > 0.01


def test_cuda_without_gpu_raises():
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(DeviceUnavailableError, match="no CUDA GPU"):
        backend_torch.build(small_spec(), init_weights(small_spec(), 0), device="cuda")
    assert backend_torch.device_name("auto") == "cpu"


def test_xla_mode_is_refused():
    with pytest.raises(ModeUnsupportedError, match="XLA"):
        backend_torch.build(small_spec(), init_weights(small_spec(), 0), device="cpu", mode="xla")


def test_configure_twice_and_versions():
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    first = backend_torch.configure(threads=1, deterministic=True)
    second = backend_torch.configure(threads=2, deterministic=True)
    assert second["intra_op_threads"] == 2 and second["deterministic"] is True
    assert first["inter_op_threads"] == second["inter_op_threads"]
    assert backend_torch.configure(threads=None, deterministic=False)["deterministic"] is False
    backend_torch.configure(threads=threads, deterministic=deterministic)  # leave the process as it was
    assert backend_torch.versions()["torch"] == torch.__version__
