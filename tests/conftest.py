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

    from absl import flags

    for flag in _SCRIPT_FLAGS & set(flags.FLAGS):
        delattr(flags.FLAGS, flag)
    before = set(flags.FLAGS)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    _SCRIPT_FLAGS.clear()
    _SCRIPT_FLAGS.update(set(flags.FLAGS) - before)
    return module


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
