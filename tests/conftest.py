"""Shared pytest set-up: quiet TensorFlow, small thread pools, data locations,
and the background lane that runs the suite's long subprocess jobs."""

import os
import pathlib
import queue
import subprocess
import threading

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
# `../shared` beside the project root: present in CI and for the developers,
# absent in a user's fresh clone.
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
OSIE_DIR = SHARED_DATA / "osie"


@pytest.fixture
def osie_dir() -> pathlib.Path:
    """The real OSIE files, or a skip that says why."""
    if not (OSIE_DIR / "data" / "eye" / "fixations.mat").exists():
        pytest.skip(
            f"real OSIE data not found at {OSIE_DIR} (only in CI/dev checkouts)"
        )
    return OSIE_DIR


_SCRIPT_FLAGS: set[str] = set()


def load_script(path: pathlib.Path, name: str):
    """Imports an experiments/ absl script as a module, for its functions.

    Each script defines its flags on absl's global `FLAGS` at import; two
    scripts that share a flag name (`--data_dir`) cannot both be imported into
    one process. The flags of the script loaded before are removed first (its
    module's tests have run: pytest runs a file's tests together).
    """
    import importlib.util
    import sys

    from absl import flags

    for flag in _SCRIPT_FLAGS & set(flags.FLAGS):
        delattr(flags.FLAGS, flag)
    before = set(flags.FLAGS)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    # Registered first, as importlib's own recipe does: dataclasses look their
    # module up in sys.modules.
    sys.modules[name] = module
    spec.loader.exec_module(module)
    _SCRIPT_FLAGS.clear()
    _SCRIPT_FLAGS.update(set(flags.FLAGS) - before)
    return module


def version1_dict(config) -> dict:
    """A `ModelConfig` as version 1 (flat, before issue 25's parts) wrote it:
    `{flat name: value}` in JSON types, no `config_version`."""
    from aesthal.config.parts import FLAT_FIELDS

    nested = config.to_dict()
    flat = {key: nested[key] for key in ("input_size", "tasks", "side_heads")}
    for name, (part, field) in FLAT_FIELDS.items():
        flat[name] = nested[part][field]
    return flat


def fit_batch(model, batch, epochs=1):
    """`model.fit` on one in-memory batch `(images, targets, weights)`, in order:
    one step per epoch."""
    images, targets, weights = batch
    return model.fit(
        images,
        targets,
        sample_weight=weights,
        batch_size=len(images),
        epochs=epochs,
        shuffle=False,
        verbose=0,
    )


def pytest_collection_modifyitems(config, items):
    """Drops `tf.test.TestCase.test_session`, a deprecated helper that pytest
    collects from the TFDS builder test cases and reports as a skip."""
    items[:] = [item for item in items if item.name != "test_session"]


# --------------------------------------------------------- the background lane
# The suite's longest fixtures mostly wait on other processes (TensorFlow
# workers, `experiments/` scripts, a numpy computation in its own process):
# one core of the 2-core CI machine idles while the pytest process runs them.
# A `background_fixture` is a module-scoped fixture whose work starts in a
# thread of its own as soon as collection ends (only where a collected test
# uses it), one job after another in the order the tests come, so that the
# tests before it run meanwhile; the fixture then waits for the result and
# re-raises the job's exception. Its tests and their assertions are unchanged.

_JOBS: dict = {}  # fixture name -> job function(tmp_path) -> result
_RESULTS: dict = {}  # fixture name -> {"done": Event, "value"/"error": ...}
_PROCESSES: list = []  # started by jobs; killed if the session ends first
_LANE: queue.Queue = queue.Queue()
_TMP_FACTORY = None


def background_fixture(function):
    """Declares `function(tmp_path)` a module-scoped fixture run in the background.

    `function` gets a fresh temporary folder and returns the fixture's value;
    a process it starts should use `background_popen` so that an interrupted
    session does not leave it running.
    """
    name = function.__name__
    _JOBS[name] = function

    @pytest.fixture(scope="module", name=name)
    def fixture():
        return _result(name)

    fixture.__doc__ = function.__doc__
    return fixture


def background_popen(*args, **kwargs) -> subprocess.Popen:
    """`subprocess.Popen`, remembered so the session's end can kill it."""
    process = subprocess.Popen(*args, **kwargs)
    _PROCESSES.append(process)
    return process


def background_run(args, timeout, **kwargs) -> subprocess.CompletedProcess:
    """`subprocess.run(args, capture_output=True, text=True, timeout=...)`,
    through `background_popen`."""
    process = background_popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise
    return subprocess.CompletedProcess(args, process.returncode, stdout, stderr)


def _submit(name: str) -> None:
    if name not in _RESULTS:
        _RESULTS[name] = {"done": threading.Event()}
        _LANE.put(name)


def _work() -> None:
    while True:
        name = _LANE.get()
        slot = _RESULTS[name]
        try:
            slot["value"] = _JOBS[name](_TMP_FACTORY.mktemp(name))
        except BaseException as error:  # re-raised in the fixture
            slot["error"] = error
        slot["done"].set()


def _result(name: str):
    _submit(name)  # a no-op when collection already queued it
    slot = _RESULTS[name]
    slot["done"].wait()
    if "error" in slot:
        raise slot["error"]
    return slot["value"]


def pytest_collection_finish(session):
    """Queues the background fixtures of the collected tests, in test order."""
    global _TMP_FACTORY
    _TMP_FACTORY = session.config._tmp_path_factory
    threading.Thread(target=_work, name="background-lane", daemon=True).start()
    if session.config.option.collectonly:
        return
    for item in session.items:
        for name in getattr(item, "fixturenames", ()):
            if name in _JOBS:
                _submit(name)


def pytest_sessionfinish(session, exitstatus):
    """Kills the jobs' processes still running (an interrupted session)."""
    for process in _PROCESSES:
        if process.poll() is None:
            process.kill()


# ------------------------------------------------------------ the fork server
# Every `python SCRIPT ARGS` subprocess imports TensorFlow again (~6 CPU-s
# each). The fork server is one process that imports `aesthal` (TensorFlow
# with it) once and runs each command in a child forked from it, as the
# interpreter runs it: `python SCRIPT`, `-c CODE` or `-m MODULE` as
# `__main__`, with `sys.argv` as Python sets it, in the given folder, its
# stdout and stderr in files, its exit status as `sys.exit` or an uncaught
# error gives it, and its end as the interpreter's (threads joined, `atexit`
# functions run: TensorFlow's removal of its autograph files, for one). The
# server runs no TensorFlow op itself, so each child starts TensorFlow's
# runtime afresh, as a new process would (devices, thread
# pools, TF_CONFIG and CUDA_VISIBLE_DEVICES are read there). A command's `env`
# replaces the child's environment, but the variables read at import
# (TF_CPP_MIN_LOG_LEVEL, thread counts) are the server's: `os.environ` with
# TF_CPP_MIN_LOG_LEVEL=2. A command that needs others, a process without
# `aesthal` imported, or one a test kills, keeps a subprocess. Commands run at
# once when asked at once (the background lane's beside the tests').
_FORK_SERVER = r"""
import atexit, ctypes, json, os, runpy, signal, sys, tempfile, threading, time
import traceback
import types

import aesthal  # noqa: F401  (TensorFlow with it, for every child)

lock = threading.Lock()  # held to fork and to write a reply
pending = {}  # child pid -> request id
children = threading.Semaphore(0)


def reap():
    while True:
        children.acquire()
        pid, wait_status = os.wait()
        with lock:
            reply = [pending.pop(pid), os.waitstatus_to_exitcode(wait_status)]
            sys.stdout.write(json.dumps(reply) + "\n")
            sys.stdout.flush()


def child(kind, target, args, cwd, env, stdout_path, stderr_path, timeout):
    status = 1
    try:
        if env is not None:
            os.environ.clear()
            os.environ.update(env)
            tempfile.tempdir = None  # read TMPDIR again
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # ends with the server
        signal.alarm(timeout)  # past it, SIGALRM ends the child
        write = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
        os.dup2(os.open(stdout_path, write), 1)
        if stderr_path == stdout_path:  # stderr=subprocess.STDOUT
            os.dup2(1, 2)
        else:
            os.dup2(os.open(stderr_path, write), 2)
        os.chdir(cwd)
        if kind == "script":
            sys.argv = [target, *args]
            sys.path[0] = os.path.dirname(os.path.abspath(target))
            runpy.run_path(target, run_name="__main__")
        elif kind == "-c":
            sys.argv = ["-c", *args]
            sys.path[0] = ""
            main = types.ModuleType("__main__")
            sys.modules["__main__"] = main
            exec(compile(target, "<string>", "exec"), main.__dict__)
        else:  # -m
            sys.argv = [target, *args]
            sys.path[0] = cwd
            runpy.run_module(target, run_name="__main__", alter_sys=True)
        status = 0
    except SystemExit as exit:  # as the interpreter ends on sys.exit
        if exit.code is None or isinstance(exit.code, int):
            status = exit.code or 0
        else:
            print(exit.code, file=sys.stderr)
    except BaseException:  # an uncaught error: its traceback, status 1
        traceback.print_exc()
    finally:  # the interpreter's end: its threads joined, then atexit
        try:
            threading._shutdown()
        except BaseException:
            traceback.print_exc()
        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)


threading.Thread(target=reap, daemon=True).start()
for line in sys.stdin:
    request_id, request = json.loads(line)
    with lock:
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            child(*request)
        pending[pid] = request_id
    children.release()
while True:  # stdin closed: the last children's replies, then the end
    with lock:
        if not pending:
            break
    time.sleep(0.05)
"""


class ForkServer:
    """Runs `python ...` commands in children forked from one process that has
    imported TensorFlow (`_FORK_SERVER`): the same exit status, stdout,
    stderr and files as a subprocess, without a TensorFlow import per
    command. Thread-safe; several commands run at once; started on first use.

    A negative `returncode` is a child ended by a signal (`-14`: past its
    timeout).
    """

    def __init__(self):
        self._process = None
        self._lock = threading.Lock()
        self._count = 0
        self._waiting: dict = {}  # request id -> {"done": Event, "status": int}

    def run(self, command, cwd=None, timeout: int = 600, env=None, stderr=None):
        """`subprocess.run(command, cwd=cwd, env=env, capture_output=True,
        text=True)`, as a `CompletedProcess`, for a `command` of the form
        `[sys.executable, SCRIPT | "-c", CODE | "-m", MODULE, *ARGS]`;
        `stderr=subprocess.STDOUT` writes both to `stdout` (`stderr` None)."""
        import json
        import sys
        import tempfile

        command = [str(a) for a in command]
        if command[0] != sys.executable:
            raise ValueError(f"not a `python ...` command: {command[:2]}")
        if command[1] in ("-c", "-m"):
            kind, target, args = command[1], command[2], command[3:]
        else:
            kind, target, args = "script", command[1], command[2:]
        with self._lock:
            if self._process is None:
                self._logs = tempfile.TemporaryDirectory(prefix="fork_server")
                self._errors = open(pathlib.Path(self._logs.name) / "server.err", "w")
                self._process = background_popen(
                    [sys.executable, "-c", _FORK_SERVER],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=self._errors,
                    text=True,
                    env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
                )
                threading.Thread(
                    target=self._read, args=(self._process,), daemon=True
                ).start()
            self._count += 1
            request_id = self._count
            logs = pathlib.Path(self._logs.name)
            stdout = logs / f"{request_id}.out"
            errors_to = (
                stdout if stderr == subprocess.STDOUT else stdout.with_suffix(".err")
            )
            slot = self._waiting[request_id] = {"done": threading.Event()}
            request = [kind, target, args, str(cwd or os.getcwd()), env]
            request += [str(stdout), str(errors_to), timeout]
            self._process.stdin.write(json.dumps([request_id, request]) + "\n")
            self._process.stdin.flush()
            errors = logs / "server.err"
        slot["done"].wait()
        if "status" not in slot:
            raise RuntimeError(f"fork server ended:\n{errors.read_text()[-3000:]}")
        result = subprocess.CompletedProcess(
            command,
            slot["status"],
            stdout.read_text(),
            None if errors_to == stdout else errors_to.read_text(),
        )
        stdout.unlink()
        errors_to.unlink(missing_ok=True)
        return result

    def _read(self, process) -> None:
        import json

        for line in process.stdout:
            request_id, status = json.loads(line)
            with self._lock:
                slot = self._waiting.pop(request_id)
            slot["status"] = status
            slot["done"].set()
        with self._lock:  # the server ended: no more replies
            for slot in self._waiting.values():
                slot["done"].set()
            self._waiting.clear()

    def close(self) -> None:
        """Ends the server, once its commands are done (a later `run` starts
        another)."""
        with self._lock:
            process, self._process = self._process, None
        if process is not None:
            process.stdin.close()
            process.wait(timeout=600)
            self._errors.close()
            self._logs.cleanup()


FORK_SERVER = ForkServer()


def fork_run(
    command, cwd=None, timeout: int = 600, env=None, stderr=None
) -> subprocess.CompletedProcess:
    """`FORK_SERVER.run`: `python ...` without a TensorFlow import of its own."""
    return FORK_SERVER.run(command, cwd=cwd, timeout=timeout, env=env, stderr=stderr)


# ------------------------------------------------ the real OSIE data, built once
_REAL_BUILD = r"""
import json, sys, time
import numpy as np
import tensorflow_datasets as tfds
from aesthal.datasets.osie import osie_dataset_builder

start = time.perf_counter()
builder = osie_dataset_builder.Builder(data_dir=sys.argv[1])
builder.download_and_prepare(
    download_config=tfds.download.DownloadConfig(manual_dir=sys.argv[2])
)
seconds = time.perf_counter() - start
skipped = {split: c.skipped for split, c in builder.skip_counters.items()}
# Read back, per example: what the test checks.
examples, first = [], None
for split in ("train", "test"):
    for ex in tfds.as_numpy(builder.as_dataset(split=split, shuffle_files=False)):
        observers = ex["fixations/observer"]
        examples.append({
            "fixations": ex["fixations"].shape[0],
            "observers_shape": list(observers.shape),
            "observers_sorted": bool(np.all(np.diff(observers) >= 0)),
            "observers_max": int(observers.max()),
            "image_shape": list(ex["image"].shape),
            "fixation_map_shape": list(ex["fixation_map"].shape),
        })
        if ex["image/filename"] == b"1001.jpg":
            first = ex["fixations"][0].tolist()
splits = {s: builder.info.splits[s].num_examples for s in ("train", "test")}
print(json.dumps({
    "seconds": seconds, "skipped": skipped, "splits": splits,
    "examples": examples, "first_fixation": first,
}))
"""


@background_fixture
def real_osie_build(tmp_path):
    """The real OSIE files built into a TFDS folder and read back, in a process
    of its own in the background from the session's start (one build for the
    session: tests/datasets/test_osie.py checks it, tests/test_shipped_model.py
    evaluates on its folder): `(data_dir, {"seconds", "skipped" and
    "splits" (sizes) per split, "examples" (each one's counts and shapes, in
    order), "first_fixation" (1001.jpg's)})`; None without the data (the test
    skips on `osie_dir` first)."""
    import json
    import sys

    if not (OSIE_DIR / "data" / "eye" / "fixations.mat").exists():
        return None
    result = fork_run(  # forked from conftest's fork server
        [sys.executable, "-c", _REAL_BUILD, str(tmp_path), str(OSIE_DIR)],
        timeout=900,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return tmp_path, json.loads(result.stdout.strip().splitlines()[-1])
