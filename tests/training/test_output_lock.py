"""One training run per run directory (issue 24, item 10): `output_lock`.

The lock holders here are plain Python processes (no TensorFlow): one that
holds the lock while the test runs, one SIGKILLed while holding it.
"""

from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import sys

import pytest

from aesthal.config import DataConfig, ExperimentConfig, TrainConfig
from aesthal.training import output_lock, runner

# Locks `argv[1]` as `output_lock` does, says so, then waits for stdin to close.
_HOLDER = r"""
import fcntl, os, sys
handle = os.open(os.path.join(sys.argv[1], "run.lock"), os.O_RDWR | os.O_CREAT)
fcntl.flock(handle, fcntl.LOCK_EX)
os.ftruncate(handle, 0)
os.write(handle, f"{os.getpid()}\n".encode())
print("locked", flush=True)
sys.stdin.read()
"""


def _hold(folder: pathlib.Path) -> subprocess.Popen:
    folder.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(folder)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout.readline().strip() == "locked"
    return process


def test_a_held_lock_refuses_a_second_run_in_one_line(tmp_path):
    holder = _hold(tmp_path / "run")
    try:
        with pytest.raises(output_lock.OutputDirInUseError) as caught:
            with output_lock.locked(tmp_path / "run"):
                pass
        message = str(caught.value)
        assert "\n" not in message
        assert f"{tmp_path / 'run'} is in use by another training run" in message
        assert f"process {holder.pid}," in message
        assert "--output_dir" in message
        # The runner refuses before it reads or writes anything in the folder.
        config = ExperimentConfig(
            output_dir=str(tmp_path / "run"),
            data=DataConfig(dataset="synthetic_scenes/tiny", data_dir="/nonexistent"),
            train=TrainConfig(epochs=1, steps_per_epoch=1),
        )
        with pytest.raises(output_lock.OutputDirInUseError):
            runner.train(config, verbose=0)
        assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["run.lock"]
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    # Released by the holder's end: the folder can be locked again.
    with output_lock.locked(tmp_path / "run") as path:
        assert path.read_text() == f"{os.getpid()}\n"


def test_a_lock_file_left_by_a_killed_run_does_not_block(tmp_path):
    holder = _hold(tmp_path / "run")
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=30)
    lock = tmp_path / "run" / "run.lock"
    assert lock.read_text() == f"{holder.pid}\n"  # the file is still there
    with output_lock.locked(tmp_path / "run"):
        assert lock.read_text() == f"{os.getpid()}\n"


def test_the_lock_is_reentrant_within_a_process_and_released_after(tmp_path):
    with output_lock.locked(tmp_path / "run"):
        with output_lock.locked(tmp_path / "run" / "."):  # the same folder
            pass
        # Still held after the inner block: another process is refused.
        result = subprocess.run(
            [sys.executable, "-c", _TRY, str(tmp_path / "run")],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert result.stdout.strip() == "refused"
    result = subprocess.run(
        [sys.executable, "-c", _TRY, str(tmp_path / "run")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.stdout.strip() == "locked"


# Tries the lock of `argv[1]` without waiting.
_TRY = r"""
import fcntl, os, sys
handle = os.open(os.path.join(sys.argv[1], "run.lock"), os.O_RDWR)
try:
    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    print("locked")
except BlockingIOError:
    print("refused")
"""
