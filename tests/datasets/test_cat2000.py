"""Tests for the `cat2000` builder on generated dummy data in the real format."""

import numpy as np
import pytest
import tensorflow_datasets as tfds

from aesthal.datasets.cat2000 import cat2000_dataset_builder

DUMMY = cat2000_dataset_builder.__file__.rsplit("/", 1)[0] + "/dummy_data"


class Cat2000BuilderTest(tfds.testing.DatasetBuilderTestCase):
    """2 categories x 10: test gets Action/005 and Indoor/005 (zero map, skipped)."""

    DATASET_CLASS = cat2000_dataset_builder.Builder
    SPLITS = {"train": 16, "test": 1}
    SKIP_CHECKSUMS = True


@pytest.fixture(scope="module")
def builder(tmp_path_factory):
    builder = cat2000_dataset_builder.Builder(
        data_dir=str(tmp_path_factory.mktemp("cat2000"))
    )
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=DUMMY)
    )
    return builder


def test_split_is_ten_percent_per_category():
    names = [f"C{c:02d}/{i:03d}.jpg" for c in range(20) for i in range(1, 101)]
    splits = cat2000_dataset_builder.split_names(names)
    assert len(splits["test"]) == 200 and len(splits["train"]) == 1800
    per_category = {n.split("/")[0] for n in splits["test"]}
    assert len(per_category) == 20


def test_fixlocs_pixels_are_zero_based_points(builder):
    examples = {
        ex["image/filename"]: ex for ex in tfds.as_numpy(builder.as_dataset("train"))
    }
    np.testing.assert_array_equal(
        examples[b"Action/001.jpg"]["fixations"], [[0, 0], [35, 63]]
    )
    rgba = examples[b"Action/002.jpg"]["image"]
    assert rgba.shape == (36, 64, 3)


def test_skips(builder):
    assert dict(builder.skip_counters["train"].skipped) == {
        "map_size_mismatch": 1,
        "bad_mat_entry": 1,
    }
    assert dict(builder.skip_counters["test"].skipped) == {"zero_map": 1}
    assert "zero_map=1 (e.g. Indoor/005.jpg)" in builder.skip_counters["test"].summary()
