"""A whole GAN in a TOML file: the user's own GAN as a task like the built-in ones.

The file is common/spec.py's GAN, one to one (``GAN.to_dict()``: the same field names, a network either an MLP's
``sizes`` or a layer list ``layers = [{ type = "Dense", units = 128 }, ...]``), plus what makes it a task:

    name = "my-gan"            # the task is named "spec.my-gan": a built-in task's name never holds a "."
    summary = "..."            # optional
    steps = 2000               # or epochs = N (over an array file or an image folder)
    quick_steps = 500          # optional: --steps quick (the default); at most steps
    eval_samples = 2000        # optional: final samples scored
    [data]                     # exactly one of:
    builtin = "gmm2"           #   a built-in data set (common/tasks.py LOADERS: samplers, mnist, faces)
    array = "points.npy"       #   a .npy (or a one-array .npz) of shape (N, *data_shape) in the generator's range
    images = "faces/"          #   a folder of images, decoded to 3x64x64 RGB in [-1, 1] (the face pipeline)

Paths are relative to the file. Every mistake is a SpecFileError (a ValueError: exit 2) naming the file, the key
path (``generator.layers[3].kernel``) and what is allowed; nothing is trained or written before the file and its
data are valid. ``task_to_toml`` writes any built-in task in this format (``--print-spec``).
"""
from __future__ import annotations

import dataclasses
import math
import re
import tomllib
from pathlib import Path

import numpy as np
import tomli_w

from common import data, metrics
from common import tasks as registry
from common.spec import (GAN, LAYERS, MLP, Loss, Network, Optimizer, Updates, check_positive_int)

SPEC_PREFIX = "spec."  # a spec file's task name; built-in names have no "." (common/tasks.py checks it)
NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
DATA_KINDS = ("builtin", "array", "images")
TASK_KEYS = ("name", "summary", "steps", "epochs", "quick_steps", "eval_samples", "data")
GAN_FIELDS = tuple(f.name for f in dataclasses.fields(GAN))
TABLES = {"loss": Loss, "d_optimizer": Optimizer, "g_optimizer": Optimizer, "updates": Updates}
LAYER_KINDS = {cls.__name__: cls for cls in LAYERS}
# Where the output activation bounds the generator's samples, the data must lie there too.
OUTPUT_RANGES = {"tanh": (-1.0, 1.0), "sigmoid": (0.0, 1.0)}
ARRAY_EVAL_SAMPLES = 2000  # an array file's final samples scored, at most its size
QUICK_STEPS = 500  # a spec file's default quick length, at most its steps


class SpecFileError(data.DataError):
    """A spec file, or the data it names, is not valid: one line naming the file and the key."""


# ----------------------------------------------------------------------------- writing


def task_to_toml(task: registry.Task) -> str:
    """A built-in task as a spec file: its GAN, its length and its data set."""
    head = {"name": task.name, "summary": task.summary}
    head.update({"steps": task.steps} if task.steps is not None else {"epochs": task.epochs})
    head.update({"quick_steps": task.quick_steps, "eval_samples": task.eval_samples})
    head["data"] = {"builtin": task.data}
    text = tomli_w.dumps({**head, **task.spec.to_dict()})
    return SCALAR_ARRAY.sub(lambda m: "[" + ", ".join(re.findall(r"    (.+),\n", m.group(1))) + "]", text)


# tomli_w writes every array one element a line; an array of numbers or strings reads better on one.
SCALAR_ARRAY = re.compile(r"\[\n((?:    [^\[\]{}\n]+,\n)+)\]")


# ----------------------------------------------------------------------------- reading


def read_task(path, data_path=None) -> registry.Task:
    """The task a spec file describes, its data loaded and checked against the GAN (``data_path`` overrides the
    file's array or image folder: --data). SpecFileError for anything wrong, naming the file and the key."""
    path = Path(path).expanduser()
    where = str(path)
    try:
        text = path.read_bytes().decode("utf-8")
        content = tomllib.loads(text)
    except FileNotFoundError:
        raise SpecFileError(f"{where}: no such file; allowed: a TOML spec file (python -m benchmarks.run "
                            "--print-spec TASK writes one)") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise SpecFileError(f"{where}: not a readable TOML file ({error}); allowed: a TOML spec file") from None
    return task_from_dict(content, where, path.parent, data_path)


def task_from_dict(content: dict, where: str, base: Path, data_path=None) -> registry.Task:
    unknown = sorted(set(content) - set(TASK_KEYS) - set(GAN_FIELDS))
    if unknown:
        fail(where, unknown[0], "unknown key", f"{', '.join(TASK_KEYS + GAN_FIELDS)}")
    name = content.get("name")
    if not isinstance(name, str) or not NAME.fullmatch(name):
        fail(where, "name", f"{name!r} is invalid", "1 to 64 letters, digits, '_' or '-'")
    spec = gan_from_dict({k: v for k, v in content.items() if k in GAN_FIELDS}, where)
    steps, epochs = content.get("steps"), content.get("epochs")
    if (steps is None) == (epochs is None):
        fail(where, "steps", "give exactly one of steps and epochs", "steps = N, or epochs = N over a data set")
    for key in ("steps", "epochs", "quick_steps", "eval_samples"):
        if content.get(key) is not None:
            positive_int(where, key, content[key])
    summary = content.get("summary", f"your GAN, from {Path(where).name}")
    if not isinstance(summary, str):
        fail(where, "summary", f"{summary!r} is not a string", "a string")
    source = data_source(content.get("data"), where, base, data_path)
    task_data = load_data(source, spec, where, data_path)
    if epochs is not None and task_data.n_train is None:
        fail(where, "epochs", f"the {source[1]} sampler has no epochs", "steps = N for a sampler")
    family = source[2]
    eval_samples = content.get("eval_samples") or (builtin_task(source[1]).eval_samples if source[0] == "builtin"
                                                   else min(ARRAY_EVAL_SAMPLES, len(task_data.reference)))
    quick = content.get("quick_steps") or min(QUICK_STEPS, steps or QUICK_STEPS)
    if steps is not None and quick > steps:
        fail(where, "quick_steps", f"{quick} is more than steps = {steps}", f"1..{steps}")
    return registry.Task(
        SPEC_PREFIX + name, f"spec file {where}", summary, spec, steps=steps, epochs=epochs,
        log_every=max(1, (steps or 1000) // 100), needs_data_dir=False, data=source[0],
        data_description=task_data.info.source, family=family, eval_samples=eval_samples, quick_steps=quick,
        loader=lambda data_dir, allow_download: task_data)


def gan_from_dict(content: dict, where: str) -> GAN:
    fields = dict(content)
    for name in ("generator", "discriminator"):
        if name not in fields:
            fail(where, name, "missing", "a table: an MLP's sizes, or input_shape and layers")
        fields[name] = network_from_dict(fields[name], where, name)
    for name, cls in TABLES.items():
        if name in fields:
            fields[name] = dataclass_from_dict(cls, fields[name], where, name)
    missing = [f.name for f in dataclasses.fields(GAN) if f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING and f.name not in fields]
    if missing:
        fail(where, missing[0], "missing", "every GAN field without a default (latent_dim, data_shape, generator, "
                                           "discriminator)")
    try:
        return GAN(**fields)
    except (ValueError, TypeError) as error:  # "GAN.batch_size='big' is invalid; allowed: ...": the key is the field
        raise SpecFileError(f"{where}: {str(error).removeprefix('GAN.')}") from None


def network_from_dict(content, where: str, key: str) -> MLP | Network:
    if not isinstance(content, dict):
        fail(where, key, f"{content!r} is not a table", "a table: an MLP's sizes, or input_shape and layers")
    if "layers" not in content:
        return dataclass_from_dict(MLP, content, where, key)
    unknown = sorted(set(content) - {"input_shape", "layers"})
    if unknown:
        fail(where, f"{key}.{unknown[0]}", "unknown key", "input_shape, layers")
    layers = content["layers"]
    if not isinstance(layers, list):
        fail(where, f"{key}.layers", f"{layers!r} is not a list", "a list of layer tables")
    built = []
    for index, layer in enumerate(layers):
        here = f"{key}.layers[{index}]"
        if not isinstance(layer, dict) or layer.get("type") not in LAYER_KINDS:
            kind = layer.get("type") if isinstance(layer, dict) else layer
            fail(where, f"{here}.type", f"{kind!r} is invalid", ", ".join(LAYER_KINDS))
        fields = {k: v for k, v in layer.items() if k != "type"}
        built.append(dataclass_from_dict(LAYER_KINDS[layer["type"]], fields, where, here))
    shape = content.get("input_shape")
    if not isinstance(shape, list):
        fail(where, f"{key}.input_shape", f"{shape!r} is invalid", "a list: [F] or [C, H, W]")
    try:
        return Network(tuple(shape), tuple(built))
    except (ValueError, TypeError) as error:  # "Network.layers[2]=...": a layer that does not fit its input
        raise SpecFileError(f"{where}: {str(error).replace('Network.', f'{key}.', 1)}") from None


def dataclass_from_dict(cls, content, where: str, key: str):
    if not isinstance(content, dict):
        fail(where, key, f"{content!r} is not a table", f"a table of {cls.__name__}'s fields")
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(content) - set(names))
    if unknown:
        fail(where, f"{key}.{unknown[0]}", "unknown key", ", ".join(names))
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in content.items()}
    try:
        return cls(**values)
    except ValueError as error:  # "Optimizer.lr=-1 is invalid; allowed: ...": named by its key path instead
        raise SpecFileError(f"{where}: {str(error).replace(f'{cls.__name__}.', f'{key}.', 1)}") from None
    except TypeError as error:
        fail(where, key, str(error), f"{cls.__name__}'s fields as common/spec.py documents them")


def positive_int(where: str, key: str, value) -> None:
    try:
        check_positive_int(key, value)
    except ValueError as error:
        fail(where, key, str(error), "an integer > 0")


def fail(where: str, key: str, problem: str, allowed: str):
    raise SpecFileError(f"{where}: {key}: {problem}; allowed: {allowed}")


# ----------------------------------------------------------------------------- data


def task_from_gan(spec: GAN, examples, name: str = "my-gan", steps: int = 500) -> registry.Task:
    """A GAN built in Python and its data as a task (benchmarks/compare.py): ``examples`` an array of shape
    (N, *data_shape), or the path of an array file or an image folder; ``steps`` its length."""
    where = f"compare(name={name!r})"
    if not NAME.fullmatch(name):
        fail(where, "name", f"{name!r} is invalid", "1 to 64 letters, digits, '_' or '-'")
    positive_int(where, "steps", steps)
    if not isinstance(spec, GAN):
        fail(where, "gan", f"{type(spec).__name__} is not a GAN", "a common.spec.GAN")
    if isinstance(examples, (str, Path)):
        path = Path(examples).expanduser()
        kind = "images" if path.is_dir() else "array"
        task_data = load_images(path, spec, where) if kind == "images" else load_array(path, spec, where)
    else:
        task_data = array_data(examples, spec, where, "data", "an array given to compare()")
    check_shape(task_data, spec, where)
    return registry.Task(
        SPEC_PREFIX + name, "benchmarks.compare", f"your GAN {name!r}", spec, steps=steps, epochs=None,
        log_every=max(1, steps // 100), needs_data_dir=False, data="array", data_description=task_data.info.source,
        family="generic", eval_samples=min(ARRAY_EVAL_SAMPLES, len(task_data.reference)), quick_steps=steps,
        loader=lambda data_dir, allow_download: task_data)


def builtin_task(key: str) -> registry.Task:
    return next(task for task in registry.TASKS.values() if task.data == key)


def data_source(content, where: str, base: Path, data_path) -> tuple[str, object, str]:
    """(kind, name or path, metric family) of the [data] table; ``data_path`` (--data) replaces its path."""
    if not isinstance(content, dict) or len(content) != 1 or next(iter(content)) not in DATA_KINDS:
        fail(where, "data", f"{content!r} is invalid", "a table with one of " + ", ".join(DATA_KINDS))
    kind, value = next(iter(content.items()))
    if kind == "builtin":
        if value not in registry.LOADERS:
            fail(where, "data.builtin", f"{value!r} is invalid", ", ".join(registry.LOADERS))
        return kind, value, builtin_task(value).family
    if not isinstance(value, str):
        fail(where, f"data.{kind}", f"{value!r} is not a path", "a path, relative to the file")
    path = Path(data_path) if data_path is not None else base / Path(value).expanduser()
    return kind, path, "generic"


def load_data(source, spec: GAN, where: str, data_path=None) -> registry.TaskData:
    kind, value, _ = source
    if kind == "builtin":  # --data is then the data set's folder (MNIST files, faces), as --data-dir is for tasks
        task_data = registry.LOADERS[value](data_path, True)
    elif kind == "array":
        task_data = load_array(value, spec, where)
    else:
        task_data = load_images(value, spec, where)
    check_shape(task_data, spec, where)
    return task_data


def check_shape(task_data, spec: GAN, where: str) -> None:
    reference_shape = task_data.reference.shape[1:]
    if math.prod(reference_shape) != spec.data_dim:
        fail(where, "data_shape", f"{list(spec.data_shape)} does not match the data's {list(reference_shape)}",
             f"data_shape = {list(reference_shape)}")


def load_array(path: Path, spec: GAN, where: str) -> registry.TaskData:
    """A (N, *data_shape) float array from .npy, or the one array of an .npz; finite and in the generator's range."""
    shown = f"data.array ({path})"
    if path.is_dir():
        fail(where, shown, "is a folder", "a .npy or .npz array file (a folder of images is data.images)")
    try:
        loaded = np.load(path, allow_pickle=False)
        if isinstance(loaded, np.lib.npyio.NpzFile):
            with loaded:
                if len(loaded.files) != 1:
                    fail(where, shown, f"holds {len(loaded.files)} arrays", "an .npz of one array, or an .npy")
                array = loaded[loaded.files[0]]
        else:
            array = loaded
    except SpecFileError:
        raise
    except (OSError, ValueError, EOFError) as error:
        fail(where, shown, f"cannot be read ({type(error).__name__}: {error})", "a .npy or .npz array file")
    return array_data(array, spec, where, shown, f"array file {path}")


def array_data(array: np.ndarray, spec: GAN, where: str, shown: str, described: str) -> registry.TaskData:
    """An array of examples as a task's data, checked: numbers, at least MIN_SAMPLES examples of the GAN's shape,
    finite, in the generator's range. The reference to score against is a seeded subset of it."""
    array = np.asarray(array)
    if array.dtype.kind not in "fiu" or array.ndim < 2 or len(array) < metrics.MIN_SAMPLES:
        fail(where, shown, f"is a {array.dtype} array of shape {array.shape}",
             f"numbers of shape (N, ...) with N >= {metrics.MIN_SAMPLES}")
    flat = array.reshape(len(array), -1).astype(np.float32)
    if flat.shape[1] != spec.data_dim:
        fail(where, shown, f"examples of shape {list(array.shape[1:])}",
             f"the GAN's data_shape {list(spec.data_shape)} ({spec.data_dim} numbers an example)")
    if not np.isfinite(flat).all():
        fail(where, shown, "holds NaN or Inf", "finite numbers")
    check_range(flat, spec, where, shown)
    rows = np.random.default_rng(registry.REFERENCE_SEED).permutation(len(flat))[:ARRAY_EVAL_SAMPLES]
    info = data.DataInfo("array", f"{described}: {len(flat)} examples of shape {list(array.shape[1:])}", None,
                         notice=metrics.GENERIC_NOTE)
    return registry.TaskData(data.ArrayDataset(flat, drop_last=True), info, flat[np.sort(rows)], len(flat))


def load_images(path: Path, spec: GAN, where: str) -> registry.TaskData:
    shown = f"data.images ({path})"
    if spec.data_dim != data.FACE_DIM:
        fail(where, "data_shape", f"{list(spec.data_shape)} for an image folder",
             f"[3, {data.FACE_SIDE}, {data.FACE_SIDE}]: images are decoded to {data.FACE_SIDE}x{data.FACE_SIDE} RGB")
    try:
        task_data = registry.load_faces(path, True)
    except data.DataError as error:
        fail(where, shown, str(error), "a folder of .jpg/.jpeg/.png images")
    check_range(task_data.reference, spec, where, shown)
    info = task_data.info
    notice = "; ".join(filter(None, [info.notice, metrics.GENERIC_NOTE]))
    return dataclasses.replace(task_data, info=dataclasses.replace(info, notice=notice))


def check_range(values: np.ndarray, spec: GAN, where: str, shown: str) -> None:
    """The data must lie where the generator's output activation can reach (tanh: [-1, 1]; sigmoid: [0, 1])."""
    last = spec.generator_network.layers[-1] if spec.generator_network.layers else None
    activation = getattr(last, "name", "linear")
    low, high = OUTPUT_RANGES.get(activation, (-math.inf, math.inf))
    if values.min() < low or values.max() > high:
        fail(where, shown, f"values in [{values.min():.4g}, {values.max():.4g}], outside the generator's "
                           f"{activation} range", f"data in [{low:g}, {high:g}] (scale it, or change the output "
                                                  "activation)")
