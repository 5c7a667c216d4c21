"""Tests for the `salicon` builder on generated dummy data in the 2017 format."""

import numpy as np
import pytest
import tensorflow_datasets as tfds

from aesthal.datasets.salicon import salicon_dataset_builder

DUMMY = salicon_dataset_builder.__file__.rsplit("/", 1)[0] + "/dummy_data"


class SaliconBuilderTest(tfds.testing.DatasetBuilderTestCase):
    """Train keeps 3 of 6, validation 1 of 2, test 2 (unlabelled)."""

    DATASET_CLASS = salicon_dataset_builder.Builder
    SPLITS = {"train": 3, "validation": 1, "test": 2}
    SKIP_CHECKSUMS = True


@pytest.fixture(scope="module")
def builder(tmp_path_factory):
    builder = salicon_dataset_builder.Builder(
        data_dir=str(tmp_path_factory.mktemp("salicon"))
    )
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=DUMMY)
    )
    return builder


def _by_name(builder, split):
    return {
        ex["image/filename"].decode(): ex
        for ex in tfds.as_numpy(builder.as_dataset(split=split))
    }


def test_skips_are_counted_by_reason(builder):
    assert dict(builder.skip_counters["train"].skipped) == {
        "zero_map": 1,
        "bad_mat_entry": 1,
        "map_size_mismatch": 1,
    }
    assert dict(builder.skip_counters["validation"].skipped) == {"missing_file": 1}
    assert builder.skip_counters["test"].skipped == {}


def test_matlab_one_based_fixation_becomes_origin(builder):
    ex = _by_name(builder, "train")["COCO_train2014_000000000001.jpg"]
    np.testing.assert_allclose(ex["fixations"][0], [0.0, 0.0])
    assert ex["fixations"].shape == (12, 2)  # 3 observers x 4 fixations
    assert ex["fixation_map"].shape == (48, 64, 1)
    assert ex["has_saliency"] and not ex["has_aesthetics"]


def test_sixteen_bit_map_is_scaled_to_eight_bit(builder):
    ex = _by_name(builder, "train")["COCO_train2014_000000000002.jpg"]
    assert ex["fixation_map"].dtype == np.uint8
    assert ex["fixation_map"].max() == 255  # 255 * 257 / 257


def test_half_size_map_is_resized_to_its_image(builder):
    ex = _by_name(builder, "train")["COCO_train2014_000000000006.jpg"]
    fmap = ex["fixation_map"][..., 0]
    assert fmap.shape == (48, 64)
    # The blob was at (12, 10) in the 24x32 map: (24, 21) at full size.
    row, col = np.unravel_index(np.argmax(fmap), fmap.shape)
    assert abs(row - 24) <= 1 and abs(col - 21) <= 1


def test_test_split_is_unlabelled_with_zero_map(builder):
    for ex in _by_name(builder, "test").values():
        assert not ex["has_saliency"]
        assert ex["fixation_map"].shape == (48, 64, 1) and not ex["fixation_map"].any()
        assert ex["fixations"].shape == (0, 2)


def test_missing_layout_lists_every_path(tmp_path):
    (tmp_path / "manual" / "images" / "train").mkdir(parents=True)
    builder = salicon_dataset_builder.Builder(data_dir=str(tmp_path / "out"))
    with pytest.raises(FileNotFoundError) as info:
        builder.download_and_prepare(
            download_config=tfds.download.DownloadConfig(
                manual_dir=str(tmp_path / "manual")
            )
        )
    message = str(info.value)
    for rel in ["images/val", "maps/train", "fixations/val", "images/train/*.jpg"]:
        assert rel in message
    assert "13 expected path(s) missing" in message
