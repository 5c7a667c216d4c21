"""Tests for aesthal.datasets.common: decoding, map checks, skips, splits."""

import cv2
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from aesthal.datasets import common


def _write(path, array, ext=".png"):
    ok, data = cv2.imencode(ext, array)
    assert ok
    path.write_bytes(data.tobytes())
    return str(path)


def test_rgb_jpeg_is_passed_through_unchanged(tmp_path):
    bgr = np.random.default_rng(0).integers(0, 256, (8, 12, 3), dtype=np.uint8)
    path = _write(tmp_path / "a.jpg", bgr, ".jpg")
    rgb, encoded = common.read_rgb_image(path)
    assert encoded == (tmp_path / "a.jpg").read_bytes()
    np.testing.assert_array_equal(rgb, cv2.imread(path)[..., ::-1])


def test_only_three_component_jpegs_are_passed_through(tmp_path):
    """A grayscale JPEG (1 component in its header) is re-encoded as RGB."""
    gray = np.full((6, 7), 90, np.uint8)
    rgb, encoded = common.read_rgb_image(_write(tmp_path / "g.jpg", gray, ".jpg"))
    assert isinstance(encoded, np.ndarray) and encoded.shape == (6, 7, 3)
    np.testing.assert_array_equal(rgb[..., 0], rgb[..., 2])


def test_cmyk_jpeg_is_converted_not_passed_through(tmp_path):
    """A 4-component JPEG: TFDS's RGB JPEG decoding cannot take its bytes."""
    image_module = pytest.importorskip("PIL.Image")
    path = tmp_path / "cmyk.jpg"
    image_module.new("CMYK", (5, 4), (0, 0, 0, 0)).save(path, "JPEG")
    rgb, encoded = common.read_rgb_image(str(path))
    assert isinstance(encoded, np.ndarray) and encoded is rgb
    assert rgb.shape == (4, 5, 3)


def test_png_bgr_is_returned_as_rgb_array(tmp_path):
    bgr = np.zeros((4, 5, 3), np.uint8)
    bgr[..., 0] = 200  # blue in cv2's BGR order
    rgb, encoded = common.read_rgb_image(_write(tmp_path / "a.png", bgr))
    assert isinstance(encoded, np.ndarray)
    np.testing.assert_array_equal(rgb[0, 0], [0, 0, 200])


def test_rgba_drops_alpha_and_gray_is_copied(tmp_path):
    bgra = np.zeros((4, 5, 4), np.uint8)
    bgra[..., 2] = 100  # red
    bgra[..., 3] = 7
    rgb, _ = common.read_rgb_image(_write(tmp_path / "a.png", bgra))
    np.testing.assert_array_equal(rgb[1, 1], [100, 0, 0])
    gray = np.full((4, 5), 77, np.uint8)
    rgb, _ = common.read_rgb_image(_write(tmp_path / "g.png", gray))
    assert rgb.shape == (4, 5, 3) and (rgb == 77).all()


def test_sixteen_bit_is_rounded_to_eight_bit(tmp_path):
    gray16 = np.array([[0, 257, 65535, 128]], np.uint16)
    rgb, _ = common.read_rgb_image(_write(tmp_path / "a.png", gray16))
    np.testing.assert_array_equal(rgb[0, :, 0], [0, 1, 255, 0])


@pytest.mark.parametrize("data", [b"", b"garbage", b"\xff\xd8\xff\xe0 truncated"])
def test_undecodable_bytes_are_a_corrupt_image_skip(tmp_path, data):
    (tmp_path / "x.jpg").write_bytes(data)
    with pytest.raises(common.BadExampleError) as info:
        common.read_rgb_image(str(tmp_path / "x.jpg"))
    assert info.value.reason == "corrupt_image"


def test_missing_file_is_a_skip_naming_it(tmp_path):
    with pytest.raises(common.BadExampleError, match="nope.jpg") as info:
        common.read_rgb_image(str(tmp_path / "nope.jpg"))
    assert info.value.reason == "missing_file"


def test_map_resize_policy():
    smap = np.zeros((24, 32), np.uint8)
    smap[12, 16] = 255
    out = common.fit_map_to_image(smap, (48, 64, 3), "m.png")
    assert out.shape == (48, 64)
    # Bilinear x2 with pixel centres: source pixel 12 sits between output
    # pixels 24 and 25 (weights 3/4 each, 1/4 for 23 and 26), likewise 16 ->
    # 32, 33: a 2x2 block of 255 * 9/16 = 143.4, edges 255 * 3/16 = 47.8.
    expected = np.zeros((48, 64), np.uint8)
    expected[23:27, 31:35] = [
        [16, 48, 48, 16],
        [48, 143, 143, 48],
        [48, 143, 143, 48],
        [16, 48, 48, 16],
    ]
    np.testing.assert_array_equal(out, expected)
    with pytest.raises(common.BadExampleError) as info:
        common.fit_map_to_image(smap, (48, 48, 3), "m.png")
    assert info.value.reason == "map_size_mismatch"
    same = common.fit_map_to_image(smap, (24, 32), "m.png")
    assert same is smap


def test_zero_map_is_a_skip():
    with pytest.raises(common.BadExampleError) as info:
        common.check_nonzero(np.zeros((3, 3)), "m.png")
    assert info.value.reason == "zero_map"
    common.check_nonzero(np.eye(3), "m.png")


def test_points_outside_the_image_are_dropped_and_counted():
    counter = common.SkipCounter("d", "train")
    points = np.array(
        [[0, 0], [-0.5, 3], [-0.51, 3], [9.49, 0], [9.5, 0], [np.nan, 1], [2, 19.4]],
        np.float32,
    )
    kept = common.keep_points_in_image(points, (10, 20), counter)
    np.testing.assert_array_equal(
        kept, np.float32([[0, 0], [-0.5, 3], [9.49, 0], [2, 19.4]])
    )
    assert counter.dropped_points == 3


def test_uint16_png_round_trips_through_tf():
    smap = np.linspace(0, 1, 12, dtype=np.float32).reshape(3, 4)
    u16 = common.to_uint16_map(smap)
    assert u16.shape == (3, 4, 1) and u16[-1, -1, 0] == 65535 and u16[0, 0, 0] == 0
    decoded = tf.io.decode_png(common.encode_png(u16), dtype=tf.uint16).numpy()
    np.testing.assert_array_equal(decoded, u16)


def test_check_manual_files_lists_everything_missing(tmp_path):
    (tmp_path / "present.txt").write_text("x")
    (tmp_path / "d").mkdir()
    with pytest.raises(FileNotFoundError) as info:
        common.check_manual_files(
            str(tmp_path),
            files=["present.txt", "a/b.mat", "c"],
            globs=["d/*.jpg"],
            dataset="demo",
            instructions="PUT FILES HERE",
        )
    message = str(info.value)
    assert "3 expected path(s)" in message
    assert "a/b.mat" in message and "/c" in message and "d/*.jpg" in message
    assert "present.txt" not in message and "PUT FILES HERE" in message


def test_missing_files_message_says_when_the_builder_downloads(tmp_path):
    kwargs = dict(files=["a.mat"], dataset="demo", instructions="PUT FILES HERE")
    with pytest.raises(FileNotFoundError) as info:
        common.check_manual_files(str(tmp_path), downloads=True, **kwargs)
    assert "leave manual_dir unset" in str(info.value)
    assert "demo downloads its files automatically" in str(info.value)
    with pytest.raises(FileNotFoundError) as info:
        common.check_manual_files(str(tmp_path), **kwargs)
    assert "download" not in str(info.value)


def _dl_manager(tmp_path, manual_dir):
    return tfds.download.DownloadManager(
        download_dir=tmp_path / "downloads",
        manual_dir=manual_dir,
        manual_dir_instructions="PUT FILES HERE",
    )


def test_manual_dir_holding_means_download_unless_files_are_there(tmp_path):
    manual = tmp_path / "manual"
    # Absent, then empty: TFDS itself refuses them; the builder downloads.
    assert common.manual_dir_holding(_dl_manager(tmp_path, manual), ["data"]) is None
    manual.mkdir()
    assert common.manual_dir_holding(_dl_manager(tmp_path, manual), ["data"]) is None
    # Something else only: still none of the data set's files.
    (manual / "README.txt").write_text("x")
    assert common.manual_dir_holding(_dl_manager(tmp_path, manual), ["data"]) is None
    # A top-level entry of the layout: the manual copy wins (even if partial).
    (manual / "data").mkdir()
    dl_manager = _dl_manager(tmp_path, manual)
    assert common.manual_dir_holding(dl_manager, ["x", "data"]) == str(manual)


def test_a_failed_download_names_the_manual_fallback():
    def fetch(urls):
        raise ConnectionError(f"no route to {urls['a']}")

    with pytest.raises(common.DownloadError) as info:
        common.download(
            fetch, {"a": "http://u/a.zip"}, dataset="demo", instructions="PUT FILES"
        )
    message = str(info.value)
    assert message.startswith("demo: the manual_dir holds none of its files")
    assert "(ConnectionError: no route to http://u/a.zip)" in message
    assert message.endswith("place the files in a manual_dir:\n\nPUT FILES")
    assert isinstance(info.value.__cause__, ConnectionError)
    ok = common.download(lambda urls: urls.upper(), "u", dataset="d", instructions="")
    assert ok == "U"


def test_extracted_folder_takes_the_archive_with_or_without_its_top_folder(
    tmp_path,
):
    with_top = tmp_path / "a" / "trainSet" / "Stimuli" / "Action"
    with_top.mkdir(parents=True)
    (with_top / "001.jpg").write_bytes(b"x")
    without_top = tmp_path / "b" / "Stimuli" / "Action"
    without_top.mkdir(parents=True)
    (without_top / "001.jpg").write_bytes(b"x")
    args = dict(folder="trainSet", pattern="Stimuli/*/*.jpg", url="http://u/t.zip")
    found = common.extracted_folder(str(tmp_path / "a"), **args)
    assert found == str(tmp_path / "a" / "trainSet")
    assert common.extracted_folder(str(tmp_path / "b"), **args) == str(tmp_path / "b")
    (tmp_path / "c" / "other").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r"http://u/t.zip.*\['other'\]"):
        common.extracted_folder(str(tmp_path / "c"), **args)


def test_hashed_test_set_is_order_free_and_sized():
    names = [f"n{i}" for i in range(50)]
    chosen = common.hashed_test_set(names, 5)
    assert len(chosen) == 5
    assert chosen == common.hashed_test_set(list(reversed(names)), 5)
    assert common.hashed_test_set(names, 6) > chosen


def test_generate_counts_skips_and_summarises():
    counter = common.SkipCounter("d", "s")

    def bad():
        raise common.BadExampleError("zero_map", "m.png")

    out = list(common.generate([("a", lambda: {"x": 1}), ("b", bad)], counter))
    assert out == [("a", {"x": 1})]
    assert counter.kept == 1 and counter.skipped == {"zero_map": 1}
    assert "kept 1 examples, skipped 1 [zero_map=1 (e.g. b)]" in counter.summary()
