"""Tests for the `osie` builder: dummy data in the real format, and the real files."""

import hashlib

import numpy as np
import pytest
import tensorflow_datasets as tfds

from aesthal.datasets.osie import osie_dataset_builder, record_checksums

DUMMY = osie_dataset_builder.__file__.rsplit("/", 1)[0] + "/dummy_data"


class OsieBuilderTest(tfds.testing.DatasetBuilderTestCase):
    """Dummy data: 1001, 1002 train; 1601 test; five bad examples skipped."""

    DATASET_CLASS = osie_dataset_builder.Builder
    SPLITS = {"train": 2, "test": 1}
    SKIP_CHECKSUMS = True


class OsieDownloadTest(tfds.testing.DatasetBuilderTestCase):
    """No manual files: the builder downloads them (TFDS's mocked `download`).

    TFDS's test case passes EXAMPLE_DIR as the manual_dir too; `dummy_data/data`
    holds no `data/` folder, so the builder takes its download path, and TFDS
    checks that every URL it asked for is recorded in `checksums.tsv`.
    """

    DATASET_CLASS = osie_dataset_builder.Builder
    SPLITS = {"train": 2, "test": 1}
    EXAMPLE_DIR = DUMMY + "/data"
    # What the mocked download returns (paths relative to EXAMPLE_DIR): the
    # release's keys for the dummy files only; 1004.jpg is absent on purpose.
    DL_DOWNLOAD_RESULT = {
        "data/eye/fixations.mat": "eye/fixations.mat",
        **{
            f"data/stimuli/{number}.jpg": f"stimuli/{number}.jpg"
            for number in (1001, 1002, 1003, 1005, 1601, 1602, 1603)
        },
    }

    def _download_and_prepare_as_dataset(self, builder):
        super()._download_and_prepare_as_dataset(builder)
        # The download path ran: the builder asked for all 701 upstream files
        # (`_download_urls` is where TFDS's test case records them).
        expected_urls = set(osie_dataset_builder.upstream_files().values())
        self.assertLen(expected_urls, 701)
        self.assertEqual(self._download_urls, expected_urls)
        # Same examples and skips as from the manual_dir.
        self.assertEqual(
            dict(builder.skip_counters["train"].skipped),
            {"corrupt_image": 1, "missing_file": 1, "bad_mat_entry": 1},
        )
        self.assertEqual(
            dict(builder.skip_counters["test"].skipped),
            {"zero_map": 1, "no_fixations": 1},
        )


def test_upstream_files_are_the_release_at_the_recorded_commit():
    files = osie_dataset_builder.upstream_files()
    assert len(files) == 701
    assert files["data/stimuli/1700.jpg"] == (
        "https://raw.githubusercontent.com/NUS-VIP/predicting-human-gaze-beyond-"
        "pixels/4a467890fcb40a2fec04cdded552760942bac7a4/data/stimuli/1700.jpg"
    )
    assert "data/stimuli/1000.jpg" not in files
    assert "data/stimuli/1701.jpg" not in files


def _prepare(tmp_path, manual_dir=DUMMY):
    builder = osie_dataset_builder.Builder(data_dir=str(tmp_path))
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir))
    )
    return builder


@pytest.fixture(scope="module")
def dummy_builder(tmp_path_factory):
    return _prepare(tmp_path_factory.mktemp("osie"))


def test_skips_are_counted_by_reason(dummy_builder):
    train = dummy_builder.skip_counters["train"]
    test = dummy_builder.skip_counters["test"]
    assert dict(train.skipped) == {
        "corrupt_image": 1,
        "missing_file": 1,
        "bad_mat_entry": 1,
    }
    assert dict(test.skipped) == {"zero_map": 1, "no_fixations": 1}
    assert (train.kept, test.kept) == (2, 1)


def test_matlab_one_based_xy_becomes_zero_based_row_col(dummy_builder):
    (example,) = tfds.as_numpy(dummy_builder.as_dataset(split="test"))
    assert example["image/filename"] == b"1601.jpg"
    # MATLAB (x=1, y=1) -> (0, 0); (x=64, y=48) -> (47, 63); (32.5, 20) -> (19, 31.5)
    np.testing.assert_allclose(
        example["fixations"], [[0, 0], [47, 63], [19, 31.5]], atol=1e-6
    )
    fmap = example["fixation_map"][..., 0]
    assert example["image"].shape == (48, 64, 3)
    assert fmap.shape == (48, 64) and fmap.dtype == np.uint16
    # Min-max normalised; the corner fixation (0, 0) is a local maximum.
    assert fmap.max() == 65535 and fmap.min() == 0
    assert fmap[0, 0] > fmap[0, 10] and fmap[0, 0] > fmap[10, 0]


def test_each_fixation_keeps_its_observer(dummy_builder):
    # 1601.jpg: subject 0 fixated (x=1, y=1) and (64, 48), subject 1 (32.5, 20).
    (example,) = tfds.as_numpy(dummy_builder.as_dataset(split="test"))
    assert example["fixations/observer"].dtype == np.int32
    np.testing.assert_array_equal(example["fixations/observer"], [0, 0, 1])
    assert dummy_builder.info.version == "1.1.0"


def test_grayscale_jpeg_becomes_rgb_with_equal_channels(dummy_builder):
    examples = {
        ex["image/filename"]: ex
        for ex in tfds.as_numpy(dummy_builder.as_dataset(split="train"))
    }
    assert set(examples) == {b"1001.jpg", b"1002.jpg"}
    gray = examples[b"1002.jpg"]["image"]
    assert gray.shape == (48, 64, 3)
    np.testing.assert_array_equal(gray[..., 0], gray[..., 2])
    assert examples[b"1001.jpg"]["has_saliency"]
    assert not examples[b"1001.jpg"]["has_aesthetics"]


def test_tfds_load_by_name_offline(tmp_path):
    import aesthal.datasets  # noqa: F401  (registers "osie")

    ds = tfds.load(
        "osie",
        split="test",
        data_dir=str(tmp_path),
        download_and_prepare_kwargs={
            "download_config": tfds.download.DownloadConfig(manual_dir=DUMMY)
        },
    )
    (example,) = list(ds.as_numpy_iterator())
    assert example["fixations"].shape == (3, 2)


def test_missing_files_are_all_listed(tmp_path):
    (tmp_path / "manual" / "data").mkdir(parents=True)
    with pytest.raises(FileNotFoundError) as info:
        _prepare(tmp_path / "out", tmp_path / "manual")
    message = str(info.value)
    assert "data/eye/fixations.mat" in message
    assert "data/stimuli" in message and "data/stimuli/*.jpg" in message
    assert "3 expected path(s) missing" in message
    assert "osie downloads its files automatically" in message


@pytest.mark.real_data
@pytest.mark.slow
def test_real_osie_has_700_images_and_98321_fixations(osie_dir, real_osie_build):
    _, built = real_osie_build
    seconds = built["seconds"]
    assert built["splits"]["train"] == 600
    assert built["splits"]["test"] == 100
    total = 0
    for ex in built["examples"]:  # every example of train, then test
        total += ex["fixations"]
        assert ex["observers_shape"] == [ex["fixations"]]
        assert ex["observers_sorted"] and ex["observers_max"] <= 14
        assert ex["image_shape"] == [600, 800, 3]
        assert ex["fixation_map_shape"] == [600, 800, 1]
    assert total == 98321
    # fixations.mat, entry 1001.jpg, observer 1: fix_x[0] = 395.5, fix_y[0] = 265.7.
    assert built["first_fixation"] is not None
    np.testing.assert_allclose(
        built["first_fixation"], [265.7 - 1, 395.5 - 1], atol=1e-4
    )
    assert set(built["skipped"]) == {"train", "test"}
    assert all(skipped == {} for skipped in built["skipped"].values())
    print(f"OSIE real build: {seconds:.1f} s")


@pytest.mark.real_data
def test_recorded_checksums_match_the_shared_copy(osie_dir):
    """checksums.tsv (as TFDS parses it) holds each shared file's size and SHA-256."""
    upstream_commit = (osie_dir / "UPSTREAM_COMMIT").read_text().strip()
    assert upstream_commit == osie_dataset_builder.UPSTREAM_COMMIT
    url_infos = osie_dataset_builder.Builder.url_infos
    files = osie_dataset_builder.upstream_files()
    assert set(url_infos) == set(files.values())
    for path, url in files.items():
        data = (osie_dir / path).read_bytes()
        info = url_infos[url]
        assert (int(info.size), info.checksum) == (
            len(data),
            hashlib.sha256(data).hexdigest(),
        ), path
        assert info.filename == path.rsplit("/", 1)[-1]


def test_record_checksums_names_missing_release_files(tmp_path):
    (tmp_path / "data" / "eye").mkdir(parents=True)
    (tmp_path / "data" / "eye" / "fixations.mat").write_bytes(b"x")
    with pytest.raises(FileNotFoundError, match="700 file.*data/stimuli/1001.jpg"):
        record_checksums.checksum_lines(tmp_path)


@pytest.mark.real_data
def test_record_checksums_reproduces_the_committed_file(osie_dir):
    lines = record_checksums.checksum_lines(osie_dir)
    assert record_checksums.CHECKSUMS.read_text().splitlines() == lines
