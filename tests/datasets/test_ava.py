"""Tests for the `ava` builder on a generated AVA.txt, images and test list."""

import pathlib

import numpy as np
import pytest
import tensorflow_datasets as tfds

from aesthal.datasets import common
from aesthal.datasets.ava import ava_dataset_builder

DUMMY = ava_dataset_builder.__file__.rsplit("/", 1)[0] + "/dummy_data"


class AvaBuilderTest(tfds.testing.DatasetBuilderTestCase):
    """Train keeps ids 10, 12; test (official list) keeps 11, 17."""

    DATASET_CLASS = ava_dataset_builder.Builder
    SPLITS = {"train": 2, "test": 2}
    SKIP_CHECKSUMS = True


@pytest.fixture(scope="module")
def builder(tmp_path_factory):
    builder = ava_dataset_builder.Builder(data_dir=str(tmp_path_factory.mktemp("ava")))
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=DUMMY)
    )
    return builder


def test_votes_and_flags(builder):
    examples = {
        ex["image/filename"]: ex for ex in tfds.as_numpy(builder.as_dataset("test"))
    }
    assert set(examples) == {b"11.jpg", b"17.jpg"}
    np.testing.assert_array_equal(
        examples[b"11.jpg"]["aesthetics_votes"], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
    )
    assert examples[b"11.jpg"]["aesthetics_votes"].dtype == np.int32
    assert examples[b"17.jpg"]["has_aesthetics"]
    assert not examples[b"17.jpg"]["has_saliency"]
    assert examples[b"17.jpg"]["image"].shape == (48, 64, 3)


def test_every_bad_line_is_counted(builder):
    assert dict(builder.skip_counters["train"].skipped) == {
        "malformed_line": 1,
        "missing_file": 1,
        "zero_votes": 1,
        "corrupt_image": 1,
        "duplicate_id": 1,
    }
    assert builder.skip_counters["test"].skipped == {}


@pytest.mark.parametrize(
    "line, reason",
    [
        ("1 2 3", "malformed_line"),
        ("1 2 0 0 0 0 0 0 0 0 0 x 1 2 3", "malformed_line"),
        ("1 2 0 0 0 0 -1 0 0 0 0 5 1 2 3", "malformed_line"),
        ("1 2 0 0 0 0 0 0 0 0 0 0 1 2 3", "zero_votes"),
    ],
)
def test_parse_line_rejects(line, reason):
    with pytest.raises(common.BadExampleError) as info:
        ava_dataset_builder.parse_line(line, "test")
    assert info.value.reason == reason


def test_without_test_list_a_hashed_split_is_used(tmp_path):
    manual = tmp_path / "manual"
    (manual / "images").mkdir(parents=True)
    image = (pathlib.Path(DUMMY) / "images" / "10.jpg").read_bytes()
    ids = [str(i) for i in range(100, 113)]
    lines = [f"{n} {i} 1 2 3 4 5 6 7 8 9 10 0 0 1" for n, i in enumerate(ids, 1)]
    (manual / "AVA.txt").write_text("\n".join(lines) + "\n")
    for i in ids:
        (manual / "images" / f"{i}.jpg").write_bytes(image)
    builder = ava_dataset_builder.Builder(data_dir=str(tmp_path / "out"))
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=str(manual))
    )
    # round(13 * 19930 / 255530) = 1 test id: the smallest SHA-256.
    (expected,) = common.hashed_test_set(ids, 1)
    (example,) = tfds.as_numpy(builder.as_dataset("test"))
    assert example["image/filename"].decode() == f"{expected}.jpg"
    assert builder.info.splits["train"].num_examples == 12


def test_a_split_with_nothing_left_fails_with_the_reasons(tmp_path):
    manual = tmp_path / "manual"
    (manual / "images").mkdir(parents=True)
    (manual / "images" / "1.jpg").write_bytes(b"broken")
    (manual / "AVA.txt").write_text("1 1 0 0 0 0 0 0 0 0 0 0 0 0 1\n")
    builder = ava_dataset_builder.Builder(data_dir=str(tmp_path / "out"))
    with pytest.raises(ValueError, match="no example left.*zero_votes=1"):
        builder.download_and_prepare(
            download_config=tfds.download.DownloadConfig(manual_dir=str(manual))
        )
