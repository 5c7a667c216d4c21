"""Loading a `.keras` network, reading nothing but the file itself.

A `.keras` file is data: before Keras deserialises anything, its config.json
must describe an `AesthalModel` (`_check_keras_config`); Keras then loads it
in safe mode. See docs/security.md.
"""

from __future__ import annotations

import json
import os
import zipfile
from typing import Any

import keras

from aesthal.models.aesthal_model import AesthalModel

# What a `.keras` file's config.json may be, and what its compile config may
# name besides plain values (see `_check_keras_config`).
_MAX_CONFIG_BYTES = 16 * 2**20
_MODEL_REGISTERED_NAME = "aesthal>AesthalModel"
_VALUE_CLASSES = frozenset({"__numpy__", "__tensor__", "__bytes__"})
# The aesthal objects a compile config named while `AesthalModel` was its own
# trainer (until issue 25): the loss weightings and the streaming metrics.
_OLD_COMPILE_OBJECTS = frozenset(
    f"aesthal>{name}"
    for name in (
        "FixedWeighting",
        "UncertaintyWeighting",
        "DynamicWeightAverage",
        "GradNorm",
        "PCGrad",
        "CAGrad",
        "SaliencyCC",
        "SaliencyKLD",
        "SaliencyNSS",
        "AestheticsEMD",
    )
)


class ModelLoadError(ValueError):
    """A model file or folder cannot be loaded; the message names it and why.

    A usage error: `python -m aesthal.predict` and `experiments/run.py` print
    it as one line and exit with status 2.
    """


def load_model(path: str | os.PathLike) -> AesthalModel:
    """Loads a `.keras` AesthalModel, reading nothing but the file itself.

    A `.keras` file is data: before Keras deserialises anything, its
    `config.json` must describe an `AesthalModel` (top level) whose compile
    config names only optimizers, dtype policies and aesthal's own objects
    (`_check_keras_config`). Keras then loads it in safe mode (no Lambda
    bytecode, no pickle; its weight store refuses HDF5 external links, soft
    links, external and virtual datasets). `AesthalModel.from_config` never
    loads trunk weights named in the config: every weight comes from the
    archive itself, and no other file is opened or downloaded.

    Raises:
        FileNotFoundError: no such file.
        ModelLoadError: (a `ValueError`) not a `.keras` file, a truncated or
            corrupt one, one that holds anything but an AesthalModel, or one
            whose weights do not load; the message names the file.
    """
    path = os.fspath(path)
    if not path.endswith(".keras"):
        raise ModelLoadError(f"{path}: expected a .keras file or a SavedModel folder")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no model file at {path}")
    if not zipfile.is_zipfile(path):
        raise ModelLoadError(
            f"{path}: not a readable .keras file (a .keras file is a zip archive; "
            "this one is truncated or corrupt): save or copy the model again."
        )
    _check_keras_config(path)
    try:
        model = keras.models.load_model(path, safe_mode=True)
    except Exception as error:  # noqa: BLE001 - any failure is the file's
        raise ModelLoadError(
            f"{path}: cannot load the model ({one_line(error)}); the file is "
            "truncated, corrupt or not an aesthal model: save or copy it again."
        ) from error
    if not isinstance(model, AesthalModel):
        raise ModelLoadError(
            f"{path} holds a {type(model).__name__}, not an AesthalModel"
        )
    return model


def _check_keras_config(path: str) -> None:
    """Refuses a `.keras` file whose config.json is anything but an aesthal model's.

    Keras would instantiate any class its config names from Keras's public
    API or the registered objects (some read files: `TFSMLayer` loads a
    SavedModel, `StringLookup` a vocabulary file), so the config is checked
    first: the top level must be an `AesthalModel` (whose own config is plain
    values), and its compile config may name only Keras optimizers and
    learning-rate schedules, dtype policies and the aesthal objects such a
    config held (`_OLD_COMPILE_OBJECTS`). The network never deserialises its
    compile config (`AesthalModel.compile_from_config`), which only files
    written before issue 25 have; the check stays a second line.

    Raises:
        ModelLoadError: naming the file and what it holds instead.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            info = archive.getinfo("config.json")
            if info.file_size > _MAX_CONFIG_BYTES:
                raise ModelLoadError(
                    f"{path}: its config.json declares {info.file_size} bytes, "
                    "far more than a model's config: refused"
                )
            config = json.loads(archive.read(info))
    except KeyError:
        raise ModelLoadError(
            f"{path}: no config.json inside: not a Keras 3 .keras file"
        ) from None
    except (OSError, zipfile.BadZipFile, ValueError, RecursionError) as error:
        if isinstance(error, ModelLoadError):
            raise
        raise ModelLoadError(
            f"{path}: its config.json cannot be read ({one_line(error)}): the "
            "file is truncated or corrupt"
        ) from None
    top = config if isinstance(config, dict) else {}
    if (
        top.get("class_name") != "AesthalModel"
        or top.get("registered_name") != _MODEL_REGISTERED_NAME
        or not isinstance(top.get("config"), dict)
    ):
        raise ModelLoadError(
            f"{path} holds a {_describe(config)}, not an AesthalModel: refused "
            "without loading it"
        )
    for where, item in _serialized_objects(top.get("compile_config")):
        if not _allowed_in_compile_config(item):
            raise ModelLoadError(
                f"{path}: its compile config names a {_describe(item)} at "
                f"{where}, which an aesthal model's never does: refused without "
                "loading it"
            )


def _allowed_in_compile_config(item: dict) -> bool:
    """Whether Keras would deserialise `item` (a dict with a "class_name") into
    an optimizer, a learning-rate schedule, a dtype policy, a plain value or
    one of the aesthal objects of an old compile config."""
    name = item.get("class_name")
    module = item.get("module")
    registered = item.get("registered_name")
    if name in _VALUE_CLASSES:
        return True
    if not isinstance(name, str) or name == "function" or name.startswith("__"):
        return False  # functions, lambdas, type specs
    if registered is None:  # a Keras built-in, found by module and name
        return isinstance(module, str) and (
            module.startswith("keras.optimizers")
            or (module == "keras" and name.endswith("DTypePolicy"))
        )
    # Keras looks the registered name up first, and falls back to the module
    # when nothing is registered under it: it must be one that was aesthal's.
    return registered in _OLD_COMPILE_OBJECTS


def _serialized_objects(tree: Any, where: str = "compile_config"):
    """Yields `(location, dict)` for every serialised object (a dict with a
    "class_name") in a JSON tree, outermost first."""
    stack = [(where, tree)]
    while stack:
        where, node = stack.pop()
        if isinstance(node, dict):
            if "class_name" in node:
                yield where, node
            stack.extend((f"{where}.{k}", v) for k, v in node.items())
        elif isinstance(node, list):
            stack.extend((f"{where}[{i}]", v) for i, v in enumerate(node))


def _describe(item: Any) -> str:
    """A serialised object's class as the user reads it, e.g. `os.system`."""
    if not isinstance(item, dict):
        return f"JSON {type(item).__name__}"
    name = item.get("class_name")
    module = item.get("module")
    text = f"{module}.{name}" if isinstance(module, str) and module else f"{name}"
    return repr(text[:120]) if not text.isprintable() else text[:120]


def one_line(error: BaseException, limit: int = 300) -> str:
    """`Type: message` on one line, at most `limit` characters."""
    text = " ".join(f"{type(error).__name__}: {error}".split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
