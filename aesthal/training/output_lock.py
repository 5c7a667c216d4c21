"""One training run per run directory: an OS lock on `run.lock` in it.

    with output_lock.locked(config.output_dir):
        ...  # train, export, evaluate: no other run writes this folder

The lock is `fcntl.flock` on `<output_dir>/run.lock`, held by the open file,
so the operating system releases it when the process ends, however it ends
(killed, out of memory): a lock file left by a dead run never blocks the
next one. The file itself stays (deleting it while another process opens it
would let two runs hold locks on two different files); it holds the process
id of the run that last locked the folder, named in the refusal.

Within one process the lock is re-entrant (`experiments/run.py` holds it for
the whole run, `aesthal.training.runner.train` takes it again). Under
`MultiWorkerMirroredStrategy` only the chief locks: the other workers write
temporary folders of their own (`aesthal.training.distribute.write_dir`).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pathlib
from collections.abc import Iterator

LOCK_FILE = "run.lock"

# realpath of a locked folder -> [file descriptor, depth], for this process.
_HELD: dict[str, list[int]] = {}


class OutputDirInUseError(OSError):
    """Another process is training into the same run directory."""


@contextlib.contextmanager
def locked(output_dir: str | os.PathLike) -> Iterator[pathlib.Path]:
    """Holds the run directory's lock for the `with` block (creates the folder).

    Args:
        output_dir: the run directory.

    Yields:
        The lock file's path.

    Raises:
        OutputDirInUseError: another live process holds the lock; one line
            naming the folder, that process and the way out.
    """
    folder = pathlib.Path(output_dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_FILE
    key = os.path.realpath(folder)
    if key in _HELD:
        _HELD[key][1] += 1
        try:
            yield path
        finally:
            _HELD[key][1] -= 1
        return
    handle = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(handle, 64).decode(errors="replace").strip()
        os.close(handle)
        raise OutputDirInUseError(
            f"{folder} is in use by another training run (process "
            f"{holder or 'unknown'}, which holds {path}): wait until it ends, or "
            "give another --output_dir."
        ) from None
    except BaseException:
        os.close(handle)
        raise
    os.ftruncate(handle, 0)
    os.write(handle, f"{os.getpid()}\n".encode())
    _HELD[key] = [handle, 1]
    try:
        yield path
    finally:
        del _HELD[key]
        fcntl.flock(handle, fcntl.LOCK_UN)
        os.close(handle)
