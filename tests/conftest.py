"""Shared pytest set-up: quiet TensorFlow, small thread pools, data locations."""

import os
import pathlib

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
