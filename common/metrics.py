"""The neutral judge: sample-quality metrics in numpy/scipy, the same code for both backends.

Every function takes numpy arrays (generated and reference samples are (n, data_dim) float32) and
returns floats. ``evaluate(family, generated, reference, **context)`` picks the metrics of a task's family;
``METRIC_INFO`` says for every metric name what it measures and whether lower or higher is better.

Families:
* parabola (seed 000): band fraction, least-squares fit of a*x^2 + (a-1), KS distance of the fitted a to
  U(1, 2); and the seed's own gauges read from the training log (``parabola_gauges``).
* 2-D mixtures (gmm2, ring8, grid25): high-quality samples, modes covered, KL of the mode histogram
  (Metz et al. 2016; Srivastava et al. 2017), MMD^2 and energy distance against fresh real samples.
* digits (mnist, mnist-small): Fréchet distance and KID on the features of ``common.digits``' classifier,
  digits covered and an Inception-score analogue from its predictions.
* faces: Fréchet distance and KID on a fixed Gabor/colour feature map (``face_features``), pixel statistics.
* runs: ``compare`` (several seeds per side, a significance test) and ``weight_distance`` (same seed,
  two backends: how far the trajectories drifted apart).
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np
import scipy.fft
import scipy.stats

from common import digits

# ----------------------------------------------------------------------------- shared settings
# A mode (or digit class) counts in the *strict* coverage only if it receives at least this fraction of its
# expected share of samples (its true weight; a tenth for digits): it rules out a mode hit by a few strays.
MIN_SHARE_OF_EXPECTED = 0.2
# Pairwise-kernel metrics (MMD, energy, KID) use at most this many samples per side, a seeded random subset
# (never the first ones: real sets such as the held-out digits are sorted by class), so memory stays
# O(MAX_KERNEL_SAMPLES^2).
MAX_KERNEL_SAMPLES = 2000
SUBSAMPLE_SEED = 0
# KID: mean and std over random subsets, as in Binkowski et al. 2018 and torch-fidelity.
KID_SUBSETS = 100
KID_SUBSET_SIZE = 1000
KID_SEED = 0
# Multi-seed comparison: the significance level of the test.
ALPHA = 0.05
TESTS = ("welch", "mann-whitney")

# ----------------------------------------------------------------------------- parabola (seed 000)
PARABOLA_X = np.linspace(-1.0, 1.0, 15)
PARABOLA_A_RANGE = (1.0, 2.0)  # real curves: y = a*x^2 + (a - 1), a ~ U(1, 2)
PARABOLA_BAND_TOLERANCE = 1e-5  # absorbs float32 rounding of curves that touch a bound (a = 1 or a = 2)
# Seed 000's gauges at convergence: mean D(real) -> 0.5 and "D score" = -D loss -> 2 ln 0.5.
PARABOLA_D_REAL_TARGET = 0.5
PARABOLA_D_SCORE_TARGET = 2.0 * math.log(0.5)
GAUGE_LAST_STEPS = 500


def parabola_fit(curves: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares a of y = a*x^2 + (a - 1) for each curve, and each curve's RMS residual.

    y + 1 = a (x^2 + 1), so a = sum((y + 1)(x^2 + 1)) / sum((x^2 + 1)^2), in closed form.
    """
    y = np.asarray(curves, dtype=np.float64)
    basis = PARABOLA_X**2 + 1.0
    a = (y + 1.0) @ basis / (basis @ basis)
    residual = y - (a[:, None] * basis - 1.0)
    return a, np.sqrt(np.mean(residual**2, axis=1))


def parabola_metrics(generated: np.ndarray) -> dict[str, float]:
    y = np.asarray(generated, dtype=np.float64)
    if y.ndim != 2 or y.shape[1] != len(PARABOLA_X):
        raise ValueError(f"parabola samples must be (n, {len(PARABOLA_X)}), got {y.shape}")
    lower, upper = PARABOLA_X**2, 2.0 * PARABOLA_X**2 + 1.0
    tol = PARABOLA_BAND_TOLERANCE
    inside = np.all((y >= lower - tol) & (y <= upper + tol), axis=1)
    a, rms = parabola_fit(y)
    lo, hi = PARABOLA_A_RANGE
    return {
        "in_band": float(inside.mean()),
        "fit_rms": float(rms.mean()),
        "a_mean": float(a.mean()),
        "ks_a": float(scipy.stats.kstest(a, "uniform", args=(lo, hi - lo)).statistic),
    }


def parabola_gauges(history: Mapping[str, Sequence[float]], last_n: int = GAUGE_LAST_STEPS) -> dict[str, float]:
    """Seed 000's gauges over the last ``last_n`` logged steps of a training log {"d_real": [...], "d_loss": [...]}.

    d_real = mean D(real) (-> 0.5); d_score = -D loss (-> 2 ln 0.5 = -1.386, the minimax D loss summed over
    real and fake); the *_gap values are the distances to those targets.
    """
    d_real = np.asarray(history["d_real"], dtype=np.float64)[-last_n:]
    d_score = -np.asarray(history["d_loss"], dtype=np.float64)[-last_n:]
    if len(d_real) == 0 or len(d_score) == 0:
        raise ValueError("the training log has no d_real/d_loss entries")
    return {
        "d_real": float(d_real.mean()),
        "d_score": float(d_score.mean()),
        "d_real_gap": float(abs(d_real.mean() - PARABOLA_D_REAL_TARGET)),
        "d_score_gap": float(abs(d_score.mean() - PARABOLA_D_SCORE_TARGET)),
    }


# ----------------------------------------------------------------------------- 2-D mixtures
HIGH_QUALITY_STDS = 3.0  # a sample within 3 std of its nearest mode is "high quality" (Unrolled GAN, VEEGAN)
# KL of the mode histogram: add-half (Krichevsky-Trofimov) pseudo-counts, so the histogram is defined and
# positive everywhere; its bias is (k/2)/n_hq, negligible for thousands of samples.
HISTOGRAM_PSEUDO_COUNT = 0.5


def mode_counts(samples: np.ndarray, means: np.ndarray, stds: np.ndarray) -> tuple[np.ndarray, int]:
    """Per mode, how many samples are high quality and nearest to it; and the number of samples."""
    x = np.asarray(samples, dtype=np.float64)
    means = np.asarray(means, dtype=np.float64)
    stds = np.broadcast_to(np.asarray(stds, dtype=np.float64), (len(means),))
    dist = np.sqrt(((x[:, None, :] - means[None, :, :]) ** 2).sum(axis=2))
    nearest = dist.argmin(axis=1)
    good = dist[np.arange(len(x)), nearest] <= HIGH_QUALITY_STDS * stds[nearest]
    return np.bincount(nearest[good], minlength=len(means)), len(x)


def mode_kl(counts: np.ndarray, weights: np.ndarray) -> float:
    """KL(histogram of high-quality samples || true weights), histogram smoothed by HISTOGRAM_PSEUDO_COUNT.

    NaN when there is no high-quality sample at all: there is no histogram to judge.
    """
    counts = np.asarray(counts, dtype=np.float64)
    weights = np.asarray(weights, dtype=np.float64)
    if counts.sum() == 0:
        return float("nan")
    p = (counts + HISTOGRAM_PSEUDO_COUNT) / (counts.sum() + HISTOGRAM_PSEUDO_COUNT * len(counts))
    return float(np.sum(p * np.log(p / weights)))


def mixture_metrics(samples: np.ndarray, means, stds, weights) -> dict[str, float]:
    """Modes covered (any high-quality sample; and strict: >= MIN_SHARE_OF_EXPECTED of the mode's expected
    share of all samples), percentage of high-quality samples, and KL of their mode histogram."""
    weights = np.asarray(weights, dtype=np.float64)
    counts, n = mode_counts(samples, means, stds)
    strict = counts >= MIN_SHARE_OF_EXPECTED * weights * n
    return {
        "modes_covered": float((counts > 0).sum()),
        "modes_covered_strict": float(strict.sum()),
        "modes_total": float(len(counts)),
        "high_quality_pct": float(100.0 * counts.sum() / n),
        "mode_kl": mode_kl(counts, weights),
    }


def _pairwise_sq_dists(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return np.maximum(d, 0.0)


def _at_most(samples: np.ndarray, n: int) -> np.ndarray:
    """The samples as (m, dim) float64, m <= n: a seeded random subset when there are more."""
    x = np.asarray(samples, dtype=np.float64).reshape(len(samples), -1)
    if len(x) > n:
        x = x[np.sort(np.random.default_rng(SUBSAMPLE_SEED).choice(len(x), n, replace=False))]
    return x


def _kernel_inputs(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x, y = _at_most(x, MAX_KERNEL_SAMPLES), _at_most(y, MAX_KERNEL_SAMPLES)
    if len(x) < 2 or len(y) < 2:
        raise ValueError("kernel metrics need at least 2 samples per side")
    return x, y


def _unbiased_mmd2(k_xx: np.ndarray, k_yy: np.ndarray, k_xy: np.ndarray) -> float:
    m, n = len(k_xx), len(k_yy)
    xx = (k_xx.sum() - np.trace(k_xx)) / (m * (m - 1))
    yy = (k_yy.sum() - np.trace(k_yy)) / (n * (n - 1))
    return float(xx + yy - 2.0 * k_xy.mean())


def mmd_rbf(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 with k = exp(-|a-b|^2 / (2 s^2)); s^2 = median squared distance between distinct pooled points.

    Can be slightly negative when the two distributions are equal (it is unbiased)."""
    x, y = _kernel_inputs(x, y)
    pooled = np.concatenate([x, y])
    d_all = _pairwise_sq_dists(pooled, pooled)
    off_diagonal = d_all[~np.eye(len(pooled), dtype=bool)]
    s2 = np.median(off_diagonal)
    if s2 <= 0:  # more than half the pairs coincide: any bandwidth fits, take the mean
        s2 = max(off_diagonal.mean(), 1e-12)
    k = np.exp(-d_all / (2.0 * s2))
    m = len(x)
    return _unbiased_mmd2(k[:m, :m], k[m:, m:], k[:m, m:])


def energy_distance(x: np.ndarray, y: np.ndarray) -> float:
    """Székely's energy distance 2 E|X-Y| - E|X-X'| - E|Y-Y'| between the two empirical distributions
    (V-statistic: 0 for identical sets, never negative). scipy.stats.energy_distance is 1-D only, and
    returns the square root of this."""
    x, y = _kernel_inputs(x, y)
    xy = np.sqrt(_pairwise_sq_dists(x, y)).mean()
    xx = np.sqrt(_pairwise_sq_dists(x, x)).mean()
    yy = np.sqrt(_pairwise_sq_dists(y, y)).mean()
    return float(max(2.0 * xy - xx - yy, 0.0))


# ----------------------------------------------------------------------------- feature distances
def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    """Square root of a symmetric positive semi-definite matrix; rounding's tiny negative eigenvalues -> 0."""
    eigenvalues, vectors = np.linalg.eigh(matrix)
    return (vectors * np.sqrt(np.clip(eigenvalues, 0.0, None))) @ vectors.T


# The fewest samples per side the feature distances take: a covariance (Fréchet distance) and an unbiased MMD (KID)
# need two. The harness checks a task's real examples against it before training.
MIN_SAMPLES = 2


def frechet_distance(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """|mu_a - mu_b|^2 + Tr(S_a + S_b - 2 sqrt(S_a S_b)) between Gaussians fitted to the features.

    Tr sqrt(S_a S_b) is computed as Tr sqrt(R S_b R) with R = sqrt(S_a): S_a S_b is similar to R S_b R, a
    symmetric PSD matrix, so both have the same eigenvalues and the trace is the sum of their square
    roots. This is what pytorch-fid's scipy.linalg.sqrtm(S_a S_b) computes, but with symmetric
    eigen-solvers it needs neither pytorch-fid's repairs (an eps on the diagonals when sqrtm fails on
    singular covariances, dropping tiny imaginary parts) nor its time: sqrtm took 3 s on 243-dim
    singular covariances, this takes milliseconds. Singular covariances (dead ReLU features, fewer
    samples than dimensions) are fine: their zero eigenvalues contribute zero.
    """
    a = np.asarray(features_a, dtype=np.float64)
    b = np.asarray(features_b, dtype=np.float64)
    if len(a) < MIN_SAMPLES or len(b) < MIN_SAMPLES:
        raise ValueError(f"the Fréchet distance needs at least {MIN_SAMPLES} samples per side")
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    root_a = _psd_sqrt(cov_a)
    middle = root_a @ cov_b @ root_a
    trace_covmean = np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2.0), 0.0, None)).sum()
    diff = mu_a - mu_b
    return float(diff @ diff + np.trace(cov_a) + np.trace(cov_b) - 2.0 * trace_covmean)


def kid(features_a: np.ndarray, features_b: np.ndarray, subsets: int = KID_SUBSETS,
        subset_size: int = KID_SUBSET_SIZE, seed: int = KID_SEED) -> tuple[float, float]:
    """Kernel Inception Distance: unbiased MMD^2 with k(x, y) = (x.y / d + 1)^3, mean and std over
    ``subsets`` random subsets of ``min(subset_size, n_a, n_b)`` samples per side (Binkowski et al. 2018).
    When both sides have that many samples or fewer, the whole sets are used once and the std is NaN."""
    a, b = _kernel_inputs(features_a, features_b)
    d = a.shape[1]
    k_aa, k_bb, k_ab = (a @ a.T / d + 1.0) ** 3, (b @ b.T / d + 1.0) ** 3, (a @ b.T / d + 1.0) ** 3
    size = min(subset_size, len(a), len(b))
    if size == len(a) == len(b):  # every subset would be both whole sets: one value, no spread to measure
        return _unbiased_mmd2(k_aa, k_bb, k_ab), float("nan")
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(subsets):
        ia = rng.choice(len(a), size, replace=False)
        ib = rng.choice(len(b), size, replace=False)
        values.append(_unbiased_mmd2(k_aa[np.ix_(ia, ia)], k_bb[np.ix_(ib, ib)], k_ab[np.ix_(ia, ib)]))
    return float(np.mean(values)), float(np.std(values))


# ----------------------------------------------------------------------------- digits
# A digit counts as covered if at least MIN_SHARE_OF_EXPECTED of its fair share (1/10) of the samples is
# classified as it, i.e. at least 2 % of them.
DIGIT_MIN_SHARE = MIN_SHARE_OF_EXPECTED / digits.NUM_CLASSES


def class_histogram(probabilities: np.ndarray) -> np.ndarray:
    """Share of samples per predicted class (argmax), (10,)."""
    predicted = np.asarray(probabilities).argmax(axis=1)
    return np.bincount(predicted, minlength=probabilities.shape[1]) / len(predicted)


def inception_score(probabilities: np.ndarray) -> float:
    """exp(E_x KL(p(y|x) || p(y))), over the whole set in one split: 1 for one repeated image, at most 10."""
    p = np.clip(np.asarray(probabilities, dtype=np.float64), 1e-12, 1.0)
    marginal = p.mean(axis=0, keepdims=True)
    return float(np.exp(np.mean(np.sum(p * (np.log(p) - np.log(marginal)), axis=1))))


def digit_metrics(generated: np.ndarray, reference: np.ndarray,
                  classifier: digits.DigitClassifier | None = None) -> dict[str, float]:
    """Generated vs held-out real digits, both (n, 784) in [-1, 1]."""
    clf = classifier or digits.default_classifier()
    feat_gen, feat_ref = clf.features(generated), clf.features(reference)
    probs = digits.softmax(clf.logits_from_features(feat_gen))
    kid_mean, kid_std = kid(feat_gen, feat_ref)
    return {
        "fd_digits": frechet_distance(feat_gen, feat_ref),
        "kid_digits": kid_mean,
        "kid_digits_std": kid_std,
        "inception_score": inception_score(probs),
        "digits_covered": float((class_histogram(probs) >= DIGIT_MIN_SHARE).sum()),
        "classifier_accuracy": clf.test_accuracy,
    }


# ----------------------------------------------------------------------------- faces
FACE_SIDE = 64
FACE_CHANNELS = 3
GABOR_WAVELENGTHS = (4.0, 8.0, 16.0)  # pixels: three scales, an octave apart
GABOR_ORIENTATIONS = 4  # 0, 45, 90, 135 degrees
GABOR_SIGMA_PER_WAVELENGTH = 0.56  # Gaussian envelope sigma / wavelength: a one-octave bandwidth
POOL_GRID = 4  # features are averaged over a 4 x 4 grid of 16 x 16 cells
FACE_PAD = 16  # reflect-padding before the FFT, so filters do not wrap around the image's edges
LUMA = np.array([0.299, 0.587, 0.114])


def to_hwc(images: np.ndarray) -> np.ndarray:
    """Face images -> (n, 64, 64, 3) float64. Flat rows are (C, H, W) order (the seed's 3x64x64 layout);
    4-D arrays may be (n, 3, 64, 64) or (n, 64, 64, 3)."""
    x = np.asarray(images, dtype=np.float64)
    if x.ndim == 2 and x.shape[1] == FACE_CHANNELS * FACE_SIDE**2:
        x = x.reshape(len(x), FACE_CHANNELS, FACE_SIDE, FACE_SIDE)
    if x.ndim == 4 and x.shape[1:] == (FACE_CHANNELS, FACE_SIDE, FACE_SIDE):
        return x.transpose(0, 2, 3, 1)
    if x.ndim == 4 and x.shape[1:] == (FACE_SIDE, FACE_SIDE, FACE_CHANNELS):
        return x
    raise ValueError(f"face images must be (n, 12288), (n, 3, 64, 64) or (n, 64, 64, 3); got {x.shape}")


def _gabor_bank_fft(size: int) -> np.ndarray:
    """FFTs of complex Gabor filters on a size x size grid, centred at the origin: (filters, size, size)."""
    r = np.fft.fftfreq(size) * size  # signed pixel offsets 0, 1, ..., -1, matching the FFT's layout
    yy, xx = np.meshgrid(r, r, indexing="ij")
    bank = []
    for wavelength in GABOR_WAVELENGTHS:
        sigma = GABOR_SIGMA_PER_WAVELENGTH * wavelength
        envelope = np.exp(-(xx**2 + yy**2) / (2.0 * sigma**2))
        for k in range(GABOR_ORIENTATIONS):
            theta = np.pi * k / GABOR_ORIENTATIONS
            carrier = np.exp(2j * np.pi * (xx * np.cos(theta) + yy * np.sin(theta)) / wavelength)
            kernel = envelope * carrier
            kernel -= envelope * (kernel.sum() / envelope.sum())  # zero mean: blind to flat brightness
            bank.append(np.fft.fft2(kernel / np.abs(kernel).sum()))
    return np.stack(bank).astype(np.complex64)


def _pool(maps: np.ndarray) -> np.ndarray:
    """(n, c, 64, 64) -> (n, c * POOL_GRID^2) cell means."""
    n, c = maps.shape[:2]
    cell = FACE_SIDE // POOL_GRID
    return maps.reshape(n, c, POOL_GRID, cell, POOL_GRID, cell).mean(axis=(3, 5)).reshape(n, -1)


def face_features(images: np.ndarray, batch: int = 32) -> np.ndarray:
    """A fixed, training-free feature map for 64x64 RGB images in [-1, 1]: (n, 243) float64.

    * Texture and shape: the luminance image is filtered by 12 complex Gabor filters (wavelengths 4, 8 and
      16 px, orientations 0/45/90/135 degrees, zero mean, one-octave bandwidth, reflect-padded FFT
      convolution); the magnitude of each response (the "energy" of a V1 complex cell) is log(1 + 10 x)
      compressed and averaged over a 4 x 4 grid of 16 x 16 cells: 12 x 16 = 192 features.
    * Colour and layout: the mean of each RGB channel over the same 16 cells (48) and each channel's
      global std (3).

    Why it is a reasonable, if weaker, stand-in for Inception features: the first layers of trained
    image CNNs (Inception's included) learn oriented, band-pass Gabor-like filters and colour blobs, and
    the pooled grid keeps where on the face edges and colours lie (eyes, mouth, hair line, background).
    What it lacks are learned higher-level parts, so it judges texture, sharpness, colour and layout,
    not whether a face is plausible; numbers are comparable only with this same feature map.
    """
    hwc = to_hwc(images)
    size = FACE_SIDE + 2 * FACE_PAD
    bank = _gabor_bank_fft(size)
    out = []
    for start in range(0, len(hwc), batch):
        x = hwc[start:start + batch]
        gray = (x @ LUMA).astype(np.float32)  # single precision: twice as fast, ample for features
        padded = np.pad(gray, ((0, 0), (FACE_PAD, FACE_PAD), (FACE_PAD, FACE_PAD)), mode="reflect")
        response = scipy.fft.ifft2(scipy.fft.fft2(padded, workers=-1)[:, None] * bank[None], workers=-1)
        energy = np.abs(response[:, :, FACE_PAD:-FACE_PAD, FACE_PAD:-FACE_PAD])
        colour = x.transpose(0, 3, 1, 2)
        texture = _pool(np.log1p(10.0 * energy).astype(np.float64))
        out.append(np.concatenate([texture, _pool(colour), colour.std(axis=(2, 3))], axis=1))
    return np.concatenate(out)


def pixel_stats(images: np.ndarray) -> dict[str, np.ndarray]:
    """Per-channel (R, G, B) mean and std of face images."""
    hwc = to_hwc(images)
    return {"mean": hwc.mean(axis=(0, 1, 2)), "std": hwc.std(axis=(0, 1, 2))}


def face_metrics(generated: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    feat_gen, feat_ref = face_features(generated), face_features(reference)
    kid_mean, kid_std = kid(feat_gen, feat_ref)
    gen, ref = pixel_stats(generated), pixel_stats(reference)
    return {
        "fd_gabor": frechet_distance(feat_gen, feat_ref),
        "kid_gabor": kid_mean,
        "kid_gabor_std": kid_std,
        "pixel_mean_gap": float(np.abs(gen["mean"] - ref["mean"]).mean()),
        "pixel_std_gap": float(np.abs(gen["std"] - ref["std"]).mean()),
    }


# ----------------------------------------------------------------------------- runs
def compare(values_a: Sequence[float], values_b: Sequence[float], test: str = "welch",
            alpha: float = ALPHA) -> dict:
    """Is a metric different between two sets of seeds? Welch's t-test or Mann-Whitney U, two-sided.

    Non-finite values (diverged runs) are left out and counted in n_a / n_b. With fewer than 2 values on
    a side there is no test: p is None. With no spread at all on either side, Welch's test is undefined:
    p is None and the verdict says whether the values are equal.
    """
    if test not in TESTS:
        raise ValueError(f"test {test!r} is invalid; allowed: {', '.join(TESTS)}")
    a = np.asarray(values_a, dtype=np.float64).ravel()
    b = np.asarray(values_b, dtype=np.float64).ravel()
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    result = {
        "n_a": len(a), "n_b": len(b),
        "mean_a": float(a.mean()) if len(a) else float("nan"),
        "std_a": float(a.std(ddof=1)) if len(a) > 1 else float("nan"),
        "mean_b": float(b.mean()) if len(b) else float("nan"),
        "std_b": float(b.std(ddof=1)) if len(b) > 1 else float("nan"),
        "test": test, "p": None,
    }
    if min(len(a), len(b)) < 2:
        result["verdict"] = f"not enough seeds (n = {min(len(a), len(b))})"
        return result
    if test == "welch" and result["std_a"] == 0 and result["std_b"] == 0:
        same = result["mean_a"] == result["mean_b"]
        result["verdict"] = "identical values" if same else "different (every seed gives the same value on each side)"
        return result
    if test == "welch":
        p = scipy.stats.ttest_ind(a, b, equal_var=False).pvalue
    else:
        p = scipy.stats.mannwhitneyu(a, b, alternative="two-sided").pvalue
    result["p"] = float(p)
    result["verdict"] = f"different (p = {p:.2g})" if p < alpha else "no significant difference"
    return result


def equivalence(values_a: Sequence[float], values_b: Sequence[float], margin: float, alpha: float = ALPHA) -> dict:
    """Are two sets of seeds *equivalent* within +-margin, not merely "not different"? Schuirmann's two one-sided
    tests (TOST) on Welch's t: H0 |mean_a - mean_b| >= margin is rejected when both mean_a - mean_b > -margin and
    mean_a - mean_b < margin are significant at ``alpha`` (p_tost is the larger one-sided p), beside ``compare``'s
    two-sided difference test. statsmodels' ttost_ind(usevar="unequal") computes the same p (a test checks it).

    The verdict is one of "equivalent within ±m", "different (p = ...)" or "inconclusive: run more seeds (about N
    would decide)", N per side from ``seeds_to_decide``; with fewer than 2 finite values a side, no test."""
    diff = compare(values_a, values_b, alpha=alpha)
    a = np.asarray(values_a, dtype=np.float64).ravel()
    b = np.asarray(values_b, dtype=np.float64).ravel()
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    result = {**diff, "margin": float(margin), "p_tost": None, "seeds_needed": None}
    within = f"equivalent within ±{margin:.2g}"
    if min(len(a), len(b)) < 2:
        result["verdict"] = "inconclusive: one seed a side cannot test equivalence (run --num-seeds 3 or more)"
        return result
    gap = abs(result["mean_a"] - result["mean_b"])
    if result["std_a"] == 0 and result["std_b"] == 0:  # no spread: the means are the answer
        result["verdict"] = within if gap < margin else "different (every seed gives the same value on each side)"
        return result
    lower = scipy.stats.ttest_ind(a + margin, b, equal_var=False, alternative="greater").pvalue
    upper = scipy.stats.ttest_ind(a - margin, b, equal_var=False, alternative="less").pvalue
    result["p_tost"] = float(max(lower, upper))
    if result["p_tost"] < alpha:
        result["verdict"] = within
    elif diff["p"] is not None and diff["p"] < alpha:
        result["verdict"] = diff["verdict"]
    else:
        sd = math.sqrt((result["std_a"] ** 2 + result["std_b"] ** 2) / 2)
        result["seeds_needed"] = seeds_to_decide(gap, sd, margin, alpha)
        n = result["seeds_needed"]
        result["verdict"] = ("inconclusive: run more seeds" + (f" (about {n} would decide)" if n else
                                                                f" (more than {MAX_SEEDS_TO_DECIDE} would be needed)"))
    return result


MAX_SEEDS_TO_DECIDE = 1000


def seeds_to_decide(gap: float, sd: float, margin: float, alpha: float = ALPHA) -> int | None:
    """Seeds per side at which, if the observed gap of means and per-seed std held, one of the two tests would
    decide: TOST (gap + t_{1-alpha} sd sqrt(2/n) < margin) or the difference test (gap > t_{1-alpha/2} sd sqrt(2/n)).
    None if neither would within MAX_SEEDS_TO_DECIDE."""
    for n in range(2, MAX_SEEDS_TO_DECIDE + 1):
        se = sd * math.sqrt(2.0 / n)
        df = 2 * n - 2
        if gap + scipy.stats.t.ppf(1 - alpha, df) * se < margin:
            return n
        if gap > scipy.stats.t.ppf(1 - alpha / 2, df) * se:
            return n
    return None


# Speed: the ratio of two configurations' step times with a bootstrap confidence interval.
SPEED_CONFIDENCE = 0.95
SPEED_RESAMPLES = 2000
SPEED_MAX_STEPS = 20_000  # per side: a seeded subset of longer runs' steps keeps the bootstrap to ~1 s
SPEED_SEED = 0
# A configuration is a candidate for a framework's fastest only with this many timed steps over its seeds (when
# any configuration has them): a median of one or two steps picks noise (the quick suite's dcgan-mnist eager cells
# time one step each).
SPEED_MIN_TIMED_STEPS = 10


def speed_ratio(times_a: Sequence[np.ndarray], times_b: Sequence[np.ndarray]) -> dict:
    """How many times longer b's median step takes than a's (> 1: a is faster), with a percentile bootstrap
    interval (scipy.stats.bootstrap) over the timed steps of every seed, pooled per side. Steps of one run are
    resampled as if independent; run-to-run (seed) variation enters through the pool, so with one seed a side
    the interval is about timing noise within that run. "tie" when the interval includes 1."""
    rng = np.random.default_rng(SPEED_SEED)
    pooled = []
    for times in (times_a, times_b):
        x = np.concatenate([np.asarray(t, dtype=np.float64).ravel() for t in times])
        x = x[np.isfinite(x)]
        if len(x) > SPEED_MAX_STEPS:
            x = rng.choice(x, SPEED_MAX_STEPS, replace=False)
        pooled.append(x)
    a, b = pooled
    if min(len(a), len(b)) < 2:
        return {"ratio": math.nan, "low": math.nan, "high": math.nan, "verdict": "not enough timed steps"}

    def ratio(x, y, axis=-1):
        return np.median(y, axis=axis) / np.median(x, axis=axis)

    interval = scipy.stats.bootstrap((a, b), ratio, n_resamples=SPEED_RESAMPLES, confidence_level=SPEED_CONFIDENCE,
                                     method="percentile", vectorized=True, random_state=rng).confidence_interval
    low, high = float(interval.low), float(interval.high)
    verdict = "tie" if low <= 1.0 <= high else ("a faster" if low > 1.0 else "b faster")
    return {"ratio": float(ratio(a, b)), "low": low, "high": high, "verdict": verdict,
            "steps_a": len(a), "steps_b": len(b)}


def compare_to_published(values: Sequence[float], mean: float, std: float, n: int, alpha: float = ALPHA) -> dict:
    """Do these seeds agree with a published mean ± std over n trials? Welch's t-test from the paper's summary
    statistics (scipy.stats.ttest_ind_from_stats), two-sided, non-finite values left out; and whether the seeds'
    mean lies in the paper's 95% interval for its own mean, mean ± 1.96 std / sqrt(n)."""
    a = np.asarray(values, dtype=np.float64).ravel()
    a = a[np.isfinite(a)]
    half = 1.96 * std / math.sqrt(n)
    result = {"n": len(a), "mean": float(a.mean()) if len(a) else float("nan"),
              "std": float(a.std(ddof=1)) if len(a) > 1 else float("nan"), "p": None,
              "in_interval": bool(len(a) and abs(a.mean() - mean) <= half), "interval": (mean - half, mean + half)}
    if len(a) < 2:
        result["verdict"] = f"not enough seeds (n = {len(a)})"
        return result
    if result["std"] == 0 and std == 0:
        result["verdict"] = "identical values" if result["mean"] == mean else "different (no spread on either side)"
        return result
    p = float(scipy.stats.ttest_ind_from_stats(result["mean"], result["std"], len(a), mean, std, n,
                                               equal_var=False).pvalue)
    result["p"] = p
    side = "higher" if result["mean"] > mean else "lower"
    result["verdict"] = f"differs: {side} (p = {p:.2g})" if p < alpha else "consistent with the paper"
    return result


def weight_distance(w_a: Mapping[str, Sequence[np.ndarray]], w_b: Mapping[str, Sequence[np.ndarray]]) -> dict[str, float]:
    """How far two sets of neutral weights {"generator": [...], "discriminator": [...]} are apart:
    relative_l2 = |a - b| / |a| over all parameters together (a is the reference), and max_abs."""
    if set(w_a) != set(w_b):
        raise ValueError(f"weight dicts have different networks: {sorted(w_a)} vs {sorted(w_b)}")
    diff_sq, ref_sq, max_abs = 0.0, 0.0, 0.0
    for net in sorted(w_a):
        if len(w_a[net]) != len(w_b[net]):
            raise ValueError(f"{net}: {len(w_a[net])} vs {len(w_b[net])} arrays")
        for i, (x, y) in enumerate(zip(w_a[net], w_b[net])):
            x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
            if x.shape != y.shape:
                raise ValueError(f"{net}[{i}]: shape {x.shape} vs {y.shape}")
            d = x - y
            diff_sq += float((d * d).sum())
            ref_sq += float((x * x).sum())
            max_abs = max(max_abs, float(np.abs(d).max(initial=0.0)))
    return {"relative_l2": math.sqrt(diff_sq) / math.sqrt(ref_sq) if ref_sq > 0 else math.sqrt(diff_sq),
            "max_abs": max_abs}


# ----------------------------------------------------------------------------- equivalence margins
# The margin of each metric's equivalence test: a difference between the frameworks smaller than this cannot be told
# from scoring another set of real data. Measured with `python scripts/equivalence_margins.py --draws 20`
# (2026-12-01): two independent sets of real examples, each of the task's evaluation size, scored exactly as a run's
# samples are; the margin is the 95th percentile of |score(set 1) - score(set 2)|, the largest over the quick-suite
# tasks that report the metric (rounded up). Where real data score the same every time (counts, shares at 100 %),
# the margin is the metric's own resolution instead: one unit of a count; for a share of n samples its binomial
# sampling noise, 1.96 sqrt(2 x 0.25 / n) (n = 2000: 0.031). No margin is stated for the parabola's fit residual and
# the seed-000 gauges (real data fit exactly, no real-vs-real spread) or for faces (no face folder here): they get the
# difference test only.
SHARE_MARGIN = 1.96 * math.sqrt(2 * 0.25 / 2000)
EQUIVALENCE_MARGINS = {
    "in_band": SHARE_MARGIN,                  # share of curves; real curves are all in band
    "ks_a": 0.015,                            # parabola real-vs-real 95 %: 0.012
    "modes_covered": 1.0,                     # a count: one mode
    "modes_covered_strict": 1.0,
    "high_quality_pct": 100 * SHARE_MARGIN,   # a share in %; real-vs-real 0.6 points, below a share's noise
    "mode_kl": 0.005,                         # grid25 real-vs-real 95 %: 0.0045 (ring8 0.0032, gmm2 0.0008)
    "mmd_rbf": 0.0015,                        # grid25 0.0013 (gmm2 0.0007, ring8 0.0007)
    "energy_distance": 0.012,                 # grid25 0.0116 (ring8 0.0043, gmm2 0.0013)
    "fd_digits": 1.2,                         # mnist 1.18 (real training digits vs the held-out reference)
    "kid_digits": 0.08,                       # mnist 0.075
    "inception_score": 0.15,                  # mnist 0.14
    "digits_covered": 1.0,                    # a count: one digit class
}

# ----------------------------------------------------------------------------- dispatcher
# What a run on data of unknown kind is scored with, and why not more (shown with its data, in the run and report).
GENERIC_NOTE = ("data of a kind the suite does not know: scored with MMD^2 and the energy distance against a subset "
                "of these data, the two scores that need nothing but samples; the family scores (mode coverage, a "
                "digit classifier, image statistics) need a known kind, and no equivalence margin is known for these "
                "data, so 'same samples?' can find a difference between the frameworks but cannot show equivalence")
# A task names its family (common/tasks.py); "generic" is a spec file's data of unknown kind (common/specfile.py).
FAMILIES = ("parabola", "mixture", "digits", "faces", "generic")


def evaluate(family: str, generated: np.ndarray, reference: np.ndarray | None = None, **context) -> dict[str, float]:
    """A task family's metrics of ``generated`` against ``reference`` (fresh real samples; held-out real
    digits; real faces). The mixture family needs ``mixture=(means, stds, weights)`` in ``context``;
    digits accept ``classifier=`` (default: the committed one)."""
    if family not in FAMILIES:
        raise ValueError(f"family {family!r} has no metrics; allowed: {', '.join(FAMILIES)}")
    if family == "parabola":
        return parabola_metrics(generated)
    if reference is None:
        raise ValueError(f"the {family} metrics need reference samples")
    if family == "mixture":
        if "mixture" not in context:
            raise ValueError("the mixture metrics need mixture=(means, stds, weights)")
        means, stds, weights = context["mixture"]
        out = mixture_metrics(generated, means, stds, weights)
        out["mmd_rbf"] = mmd_rbf(generated, reference)
        out["energy_distance"] = energy_distance(generated, reference)
        return out
    if family == "digits":
        return digit_metrics(generated, reference, context.get("classifier"))
    if family == "generic":  # data of unknown kind: the two distances that need nothing but samples
        return {"data_mmd_rbf": mmd_rbf(generated, reference),
                "data_energy_distance": energy_distance(generated, reference)}
    return face_metrics(generated, reference)


def _info(description: str, better: str | None) -> dict:
    return {"description": description, "better": better}


# better: "lower", "higher", or None for what describes rather than judges.
METRIC_INFO = {
    "in_band": _info("share of curves inside the band [x^2, 2x^2 + 1] at all 15 points", "higher"),
    "fit_rms": _info("mean RMS residual of the least-squares fit to a*x^2 + (a - 1)", "lower"),
    "a_mean": _info("mean fitted a (real curves: 1.5)", None),
    "ks_a": _info("Kolmogorov-Smirnov distance of the fitted a to U(1, 2)", "lower"),
    "d_real": _info("seed 000's 'D accuracy': mean D(real) over the last logged steps (-> 0.5)", None),
    "d_score": _info("seed 000's 'D score': -D loss over the last logged steps (-> 2 ln 0.5 = -1.386)", None),
    "d_real_gap": _info("|mean D(real) - 0.5| over the last logged steps", "lower"),
    "d_score_gap": _info("|-D loss - 2 ln 0.5| over the last logged steps", "lower"),
    "modes_covered": _info("modes with at least one sample within 3 std", "higher"),
    "modes_covered_strict": _info(f"modes receiving >= {MIN_SHARE_OF_EXPECTED:g} x their expected share "
                                  "of samples within 3 std", "higher"),
    "modes_total": _info("number of modes of the true mixture", None),
    "high_quality_pct": _info("percentage of samples within 3 std of their nearest mode", "higher"),
    "mode_kl": _info("KL(mode histogram of high-quality samples || true weights)", "lower"),
    "mmd_rbf": _info("unbiased MMD^2, RBF kernel, median-heuristic bandwidth, vs fresh real samples", "lower"),
    "energy_distance": _info("energy distance 2E|X-Y| - E|X-X'| - E|Y-Y'| vs fresh real samples", "lower"),
    # A spec file's data of unknown kind (family "generic"). No equivalence margin: a margin is the spread of
    # real-vs-real scores on a known data set (scripts/equivalence_margins.py), and these data are the user's.
    "data_mmd_rbf": _info("unbiased MMD^2, RBF kernel, median-heuristic bandwidth, vs the training data (a subset)",
                          "lower"),
    "data_energy_distance": _info("energy distance 2E|X-Y| - E|X-X'| - E|Y-Y'| vs the training data (a subset)",
                                  "lower"),
    "fd_digits": _info("Fréchet distance on the digit classifier's 128 features vs held-out real digits", "lower"),
    "kid_digits": _info("KID (cubic kernel MMD^2) on the digit classifier's features", "lower"),
    "kid_digits_std": _info("std of KID over subsets", None),
    "inception_score": _info("exp(E KL(p(y|x) || p(y))) with the digit classifier (1 to 10)", "higher"),
    "digits_covered": _info(f"digit classes predicted for >= {DIGIT_MIN_SHARE:.0%} of samples", "higher"),
    "classifier_accuracy": _info("the digit classifier's accuracy on held-out real digits (the judge's own)", None),
    "fd_gabor": _info("Fréchet distance on fixed Gabor + colour features vs real faces", "lower"),
    "kid_gabor": _info("KID (cubic kernel MMD^2) on fixed Gabor + colour features", "lower"),
    "kid_gabor_std": _info("std of KID over subsets", None),
    "pixel_mean_gap": _info("mean over RGB of |mean pixel generated - real|", "lower"),
    "pixel_std_gap": _info("mean over RGB of |pixel std generated - real|", "lower"),
}
