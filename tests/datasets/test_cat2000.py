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


class Cat2000DownloadTest(tfds.testing.DatasetBuilderTestCase):
    """No manual files: the builder downloads trainSet.zip (TFDS's mocked download).

    TFDS's test case passes EXAMPLE_DIR as the manual_dir too; `trainSet/`
    holds no `trainSet/`, so the builder takes its download path. The zip
    "extracts" to `dummy_data/` (EXAMPLE_DIR's parent), which holds its top
    folder `trainSet/` as the real zip does.
    """

    DATASET_CLASS = cat2000_dataset_builder.Builder
    SPLITS = {"train": 16, "test": 1}
    EXAMPLE_DIR = DUMMY + "/trainSet"
    DL_EXTRACT_RESULT = ".."
    # The zip's checksum cannot be recorded offline (see the builder).
    SKIP_CHECKSUMS = True

    def _download_and_prepare_as_dataset(self, builder):
        super()._download_and_prepare_as_dataset(builder)
        # The download path ran (`_download_urls`: TFDS's record of the URLs).
        self.assertEqual(self._download_urls, {"http://saliency.mit.edu/trainSet.zip"})
        self.assertEqual(
            dict(builder.skip_counters["train"].skipped),
            {"map_size_mismatch": 1, "bad_mat_entry": 1},
        )


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


def test_partial_manual_dir_lists_what_is_missing(tmp_path):
    """A manual_dir with part of the layout is the manual source: no download."""
    (tmp_path / "manual" / "trainSet" / "Stimuli").mkdir(parents=True)
    builder = cat2000_dataset_builder.Builder(data_dir=str(tmp_path / "out"))
    with pytest.raises(FileNotFoundError, match="5 expected path") as info:
        builder.download_and_prepare(
            download_config=tfds.download.DownloadConfig(
                manual_dir=str(tmp_path / "manual")
            )
        )
    message = str(info.value)
    assert "trainSet/FIXATIONLOCS/*/*.mat (no file matches)" in message
    assert "cat2000 downloads its files automatically" in message
