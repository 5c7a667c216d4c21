"""The trained models that ship with aesthal: loaded offline, by name.

    import aesthal

    predictor = aesthal.pretrained()          # the default real-photo model
    predictor.predict(image)["saliency"]      # float32 [h, w], sums to 1

    model = aesthal.released.load_model()     # the Keras network itself

A released model is a config (`<name>.json`, a `ModelConfig`) and its weights
(`<name>.npz`: float16 arrays keyed by each variable's path inside the
network), both package data
of `aesthal.released`; `RELEASES` records the sha256 of the weights file,
checked before it is read (a changed or truncated file is refused, naming the
fix: reinstall aesthal). The network is built from the config without reading
any other file (no ImageNet weights), then every variable is set from the file
(float16 widened to float32; every variable of the network must be in the file
and every array of the file must be used). `np.load` runs without pickle.

How each release was made (teacher runs, distillation, the commands) and what
it scores: docs/model_card.md; licences: docs/weights.md.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import pathlib
import warnings
from importlib import resources

import numpy as np

from aesthal.config import ModelConfig
from aesthal.inference import Predictor
from aesthal.models import AesthalModel


@dataclasses.dataclass(frozen=True)
class Release:
    """One shipped model.

    Attributes:
        name: what `load_model(name)` takes.
        sha256: hex digest of `<name>.npz`.
        summary: one line saying what the model is, for the command lines.
    """

    name: str
    sha256: str
    summary: str


#: The shipped models, by name.
RELEASES: dict[str, Release] = {
    "osie-lite2-distilled": Release(
        name="osie-lite2-distilled",
        sha256="4f376dc509f87358c2237c8472f1d3d1390340f2d2cc783ceb2a66ae515373cf",
        summary=(
            "EfficientNet-Lite2 at 384x512, one pass, distilled from three "
            "OSIE-trained Lite2 models (docs/model_card.md)"
        ),
    ),
}
#: What `load_model()` and `aesthal.pretrained()` load without a name.
DEFAULT = "osie-lite2-distilled"


class ReleaseError(ValueError):
    """A shipped model is missing, unknown or its file fails its check."""


def _keys(model: AesthalModel) -> list[str]:
    """Each variable's path in `model`, without the model's own name (heads'
    paths start with it, the trunk's do not), so that any name loads."""
    prefix = model.name + "/"
    return [
        v.path[len(prefix) :] if v.path.startswith(prefix) else v.path
        for v in model.weights
    ]


def _release(name: str | None) -> Release:
    name = DEFAULT if name is None else name
    if name is None or name not in RELEASES:
        known = ", ".join(sorted(RELEASES)) or "none"
        raise ReleaseError(
            f"no shipped model named {name!r} (shipped: {known}); pass a model "
            "file instead (--model=PATH)"
        )
    return RELEASES[name]


def _read(name: str, suffix: str, directory: str | os.PathLike | None) -> bytes:
    if directory is None:
        path = resources.files(__package__).joinpath(name + suffix)
    else:
        path = pathlib.Path(directory) / (name + suffix)
    try:
        return path.read_bytes()
    except OSError as error:
        raise ReleaseError(
            f"{path}: the model's file cannot be read ({error}); "
            "reinstall aesthal (pip install --force-reinstall aesthal)"
        ) from error


def save_release(model: AesthalModel, directory: str | os.PathLike, name: str) -> str:
    """Writes `model` as a release: `<name>.json` and `<name>.npz` (float16).

    Args:
        model: a built `AesthalModel`.
        directory: where to write (the package folder, to ship it).
        name: the release's name.

    Returns:
        The sha256 of the weights file, for `RELEASES`.

    Raises:
        ValueError: two variables share a path, or a weight is not finite
            or does not fit float16.
    """
    arrays = {}
    for key, variable in zip(_keys(model), model.weights, strict=True):
        value = np.asarray(variable.numpy(), np.float32)
        if key in arrays:
            raise ValueError(f"two variables share the path {key}")
        if not np.all(np.isfinite(value)) or np.abs(value).max(initial=0) > 65000:
            raise ValueError(f"{key}: not finite or outside float16")
        arrays[key] = value.astype(np.float16)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    data = buffer.getvalue()
    directory = os.fspath(directory)
    with open(os.path.join(directory, name + ".npz"), "wb") as handle:
        handle.write(data)
    config = model.config.to_dict()
    with open(os.path.join(directory, name + ".json"), "w") as handle:
        handle.write(json.dumps(config, indent=2, sort_keys=True) + "\n")
    return hashlib.sha256(data).hexdigest()


def load_model(
    name: str | None = None, directory: str | os.PathLike | None = None
) -> AesthalModel:
    """The shipped network `name` (default `DEFAULT`), weights set, offline.

    Args:
        name: a key of `RELEASES`; None = `DEFAULT`.
        directory: where its files are; None = the package's own folder.

    Raises:
        ReleaseError: an unknown name, a missing file, a file whose sha256
            differs from the recorded one, or weights that do not fit the
            network.
    """
    release = _release(name)
    data = _read(release.name, ".npz", directory)
    digest = hashlib.sha256(data).hexdigest()
    if digest != release.sha256:
        raise ReleaseError(
            f"{release.name}.npz: sha256 {digest} differs from the recorded "
            f"{release.sha256}: the file is damaged or altered; reinstall aesthal"
        )
    config = ModelConfig.from_dict(json.loads(_read(release.name, ".json", directory)))
    model = AesthalModel(config, load_backbone_weights=False, name=release.name)
    with np.load(io.BytesIO(data), allow_pickle=False) as stored:
        arrays = {key: stored[key] for key in stored.files}
    keys = _keys(model)
    missing = [key for key in keys if key not in arrays]
    unused = sorted(set(arrays) - set(keys))
    if missing or unused:
        raise ReleaseError(
            f"{release.name}.npz does not fit the network built from its config "
            f"(missing: {missing[:3]}, unused: {unused[:3]}); reinstall aesthal"
        )
    for key, variable in zip(keys, model.weights, strict=True):
        value = arrays[key]
        if tuple(value.shape) != tuple(variable.shape):
            raise ReleaseError(
                f"{release.name}.npz: {key} has shape {value.shape}, "
                f"the network's is {tuple(variable.shape)}; reinstall aesthal"
            )
        variable.assign(value.astype(np.float32))
    return model


def predictor(
    name: str | None = None, directory: str | os.PathLike | None = None
) -> Predictor:
    """An `aesthal.inference.Predictor` of the shipped model `name`.

    A shipped model trained on saliency alone predicts saliency alone; the
    model card says so, so the `Predictor`'s warning about the left-out
    aesthetics outputs is not repeated here.
    """
    model = load_model(name, directory)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", ".*the model was trained on", UserWarning)
        return Predictor(model)
