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


def pytest_collection_modifyitems(config, items):
    """Drops `tf.test.TestCase.test_session`, a deprecated helper that pytest
    collects from the TFDS builder test cases and reports as a skip."""
    items[:] = [item for item in items if item.name != "test_session"]
