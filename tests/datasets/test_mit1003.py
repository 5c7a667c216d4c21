"""Tests for the `mit1003` builder on generated dummy data in the real format."""

import numpy as np
import pytest
import tensorflow_datasets as tfds

from aesthal.datasets.mit1003 import mit1003_dataset_builder

DUMMY = mit1003_dataset_builder.__file__.rsplit("/", 1)[0] + "/dummy_data"


class Mit1003BuilderTest(tfds.testing.DatasetBuilderTestCase):
    """11 images: 1 hashed to test (i7), 8 kept in train, 2 skipped."""

    DATASET_CLASS = mit1003_dataset_builder.Builder
    SPLITS = {"train": 8, "test": 1}
    SKIP_CHECKSUMS = True


class Mit1003DownloadTest(tfds.testing.DatasetBuilderTestCase):
    """No manual files: the builder downloads both zips (TFDS's mocked download).

    TFDS's test case passes EXAMPLE_DIR as the manual_dir too; `ALLSTIMULI/`
    holds neither `ALLSTIMULI/` nor `ALLFIXATIONMAPS/`, so the builder takes
    its download path. Both zips "extract" to `dummy_data/` (EXAMPLE_DIR's
    parent), which holds their top folders as the real zips do.
    """

    DATASET_CLASS = mit1003_dataset_builder.Builder
    SPLITS = {"train": 8, "test": 1}
    EXAMPLE_DIR = DUMMY + "/ALLSTIMULI"
    DL_EXTRACT_RESULT = {"stimuli": "..", "maps": ".."}
    # The zips' checksums cannot be recorded offline (see the builder).
    SKIP_CHECKSUMS = True

    def _download_and_prepare_as_dataset(self, builder):
        super()._download_and_prepare_as_dataset(builder)
        # The download path ran (`_download_urls`: TFDS's record of the URLs).
        self.assertEqual(
            self._download_urls, set(mit1003_dataset_builder.DOWNLOADS.values())
        )
        self.assertEqual(
            dict(builder.skip_counters["train"].skipped),
            {"missing_file": 1, "corrupt_image": 1},
        )


def test_downloads_are_the_authors_zips():
    assert mit1003_dataset_builder.DOWNLOADS == {
        "stimuli": "http://people.csail.mit.edu/tjudd/WherePeopleLook/ALLSTIMULI.zip",
        "maps": "http://people.csail.mit.edu/tjudd/WherePeopleLook/"
        "ALLFIXATIONMAPS.zip",
    }


@pytest.fixture(scope="module")
def builder(tmp_path_factory):
    builder = mit1003_dataset_builder.Builder(
        data_dir=str(tmp_path_factory.mktemp("mit1003"))
    )
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=DUMMY)
    )
    return builder


def test_split_is_fixed_and_sized_100_of_1003():
    stems = [f"img{i:04d}" for i in range(1003)]
    test = mit1003_dataset_builder.test_stems(stems)
    assert len(test) == 100
    assert test == mit1003_dataset_builder.test_stems(list(reversed(stems)))
    assert mit1003_dataset_builder.test_stems([f"i{i}" for i in range(1, 12)]) == {"i7"}


def test_points_are_the_fixated_pixels_zero_based(builder):
    examples = {
        ex["image/filename"]: ex for ex in tfds.as_numpy(builder.as_dataset("train"))
    }
    np.testing.assert_array_equal(
        examples[b"i1.jpeg"]["fixations"], [[0, 0], [10, 20], [47, 63]]
    )
    assert examples[b"i1.jpeg"]["fixation_map"].shape == (48, 64, 1)
    gray = examples[b"i9.jpeg"]["image"]
    np.testing.assert_array_equal(gray[..., 0], gray[..., 1])


def test_skips(builder):
    assert dict(builder.skip_counters["train"].skipped) == {
        "missing_file": 1,
        "corrupt_image": 1,
    }


def test_missing_layout_lists_every_path(tmp_path):
    """A manual_dir with part of the layout is the manual source: no download."""
    builder = mit1003_dataset_builder.Builder(data_dir=str(tmp_path / "out"))
    (tmp_path / "manual" / "ALLSTIMULI").mkdir(parents=True)
    (tmp_path / "manual" / "README.txt").write_text("not the data")
    with pytest.raises(FileNotFoundError, match="4 expected path") as info:
        builder.download_and_prepare(
            download_config=tfds.download.DownloadConfig(
                manual_dir=str(tmp_path / "manual")
            )
        )
    message = str(info.value)
    assert "ALLFIXATIONMAPS/*_fixPts.jpg" in message
    assert "ALLSTIMULI/*.jpeg" in message
    assert "mit1003 downloads its files automatically" in message
    assert "ALLFIXATIONMAPS/<stem>_fixPts.jpg" in message  # the instructions
