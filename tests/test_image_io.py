"""`aesthal.image_io`: image sizes from headers, the pixel limit (issue 24,
items 7 and 11)."""

from __future__ import annotations

import pathlib
import struct
import zlib

import cv2
import numpy as np
import pytest

from aesthal import image_io, predict


def png_of_zeros(path: pathlib.Path, height: int, width: int) -> pathlib.Path:
    """A valid 8-bit RGB PNG of zeros, compressed row by row (a 12000x12000 one
    is ~420 KB on disk and 432 MB decoded), never held in memory whole."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    compressor = zlib.compressobj(9)
    row = bytes(1 + 3 * width)  # filter byte 0, then the row's zeros
    parts = [compressor.compress(row) for _ in range(height)]
    idat = b"".join(parts) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", idat)
        + chunk(b"IEND", b"")
    )
    return path


def _encodable(extension: str, image: np.ndarray) -> bool:
    try:
        return bool(cv2.imencode(extension, image)[0])
    except cv2.error:
        return False


def test_every_extension_read_is_sized_and_decoded(tmp_path):
    rng = np.random.default_rng(0)
    images = {
        "rgb": rng.integers(0, 256, (21, 34, 3), dtype=np.uint8),
        "gray": rng.integers(0, 256, (7, 301), dtype=np.uint8),
        "rgba": rng.integers(0, 256, (40, 9, 4), dtype=np.uint8),
    }
    kinds = {ext: kind for kind, exts in image_io.FORMATS.items() for ext in exts}
    checked = set()
    for extension in image_io.IMAGE_EXTENSIONS:
        for name, image in images.items():
            if not _encodable(extension, image):
                continue  # e.g. OpenCV writes no gray GIF
            path = tmp_path / f"{name}{extension}"
            assert cv2.imwrite(str(path), image)
            assert image_io.image_size(path) == (kinds[extension], *image.shape[:2])
            assert predict.read_image(path).shape == (*image.shape[:2], 3)
            checked.add(extension)
    assert checked == set(image_io.IMAGE_EXTENSIONS)


@pytest.mark.parametrize(
    "extension, params",
    [
        (".png", []),
        (".tif", []),
        (".jpg", [cv2.IMWRITE_JPEG_PROGRESSIVE, 1]),
        (".webp", [cv2.IMWRITE_WEBP_QUALITY, 101]),  # lossless: VP8L
        (".webp", [cv2.IMWRITE_WEBP_QUALITY, 50]),  # lossy: VP8
    ],
)
def test_variants_of_a_format(tmp_path, extension, params):
    deep = extension in (".png", ".tif")  # 16-bit
    image = np.full((25, 35, 3), 1000 if deep else 100, np.uint16 if deep else np.uint8)
    path = tmp_path / f"x{extension}"
    assert cv2.imwrite(str(path), image, params)
    assert image_io.image_size(path)[1:] == (25, 35)


def _tiff(order: str, big: bool, width_type: int) -> bytes:
    """A TIFF header and first IFD only (no pixels): width 300, height 70000."""
    mark = b"II" if order == "<" else b"MM"
    code = {3: "H", 4: "I", 16: "Q"}
    if big:
        head = mark + struct.pack(order + "HHHQ", 43, 8, 0, 16)
        entry = lambda tag, kind, value: struct.pack(  # noqa: E731
            order + "HHQ", tag, kind, 1
        ) + struct.pack(order + code[kind], value).ljust(8, b"\0")
        count = struct.pack(order + "Q", 2)
    else:
        head = mark + struct.pack(order + "HI", 42, 8)
        entry = lambda tag, kind, value: struct.pack(  # noqa: E731
            order + "HHI", tag, kind, 1
        ) + struct.pack(order + code[kind], value).ljust(4, b"\0")
        count = struct.pack(order + "H", 2)
    return head + count + entry(256, width_type, 300) + entry(257, 4, 70000)


@pytest.mark.parametrize(
    "order, big, width_type",
    [
        ("<", False, 3),
        (">", False, 3),
        (">", False, 4),
        ("<", True, 16),
        (">", True, 3),
    ],
)
def test_tiff_headers_of_either_byte_order_and_bigtiff(
    tmp_path, order, big, width_type
):
    path = tmp_path / "x.tif"
    path.write_bytes(_tiff(order, big, width_type))
    assert image_io.image_size(path) == ("TIFF", 70000, 300)


def test_hand_made_headers(tmp_path):
    # A top-down BMP stores a negative height.
    bmp = b"BM" + bytes(12) + struct.pack("<Iii", 40, 5000, -6000)
    (tmp_path / "a.bmp").write_bytes(bmp)
    assert image_io.image_size(tmp_path / "a.bmp") == ("BMP", 6000, 5000)
    # A GIF whose first frame reaches past its logical screen: both count.
    gif = b"GIF89a" + struct.pack("<HHBBB", 10, 10, 0, 0, 0)
    gif += b"!\xf9\x04\x00\x00\x00\x00\x00"  # a graphic control extension
    gif += b"," + struct.pack("<HHHHB", 5, 7, 30000, 40, 0)
    (tmp_path / "a.gif").write_bytes(gif)
    assert image_io.image_size(tmp_path / "a.gif") == ("GIF", 47, 30005)
    # WebP's extended header holds the canvas (24-bit sizes minus one).
    vp8x = b"RIFF\0\0\0\0WEBPVP8X" + struct.pack("<I", 10) + bytes(4)
    vp8x += (19999).to_bytes(3, "little") + (9).to_bytes(3, "little")
    (tmp_path / "a.webp").write_bytes(vp8x)
    assert image_io.image_size(tmp_path / "a.webp") == ("WebP", 10, 20000)


def test_pixel_bomb_is_refused_from_its_header_without_decoding(tmp_path, monkeypatch):
    bomb = png_of_zeros(tmp_path / "bomb.png", 12000, 12000)
    assert bomb.stat().st_size < 1_000_000  # 432 MB of pixels in < 1 MB

    def never(*args, **kwargs):
        raise AssertionError("the decoder was called")

    monkeypatch.setattr(cv2, "imdecode", never)
    with pytest.raises(image_io.ImageTooLargeError) as info:
        predict.read_image(bomb)
    message = str(info.value)
    assert message.startswith(f"{bomb}: 12000x12000 pixels (144.0 megapixels) is over")
    assert "the limit of 50 megapixels" in message
    assert "--max_pixels=144000000" in message
    # Raised past the image, the limit lets it through to the decoder.
    with pytest.raises(AssertionError, match="the decoder was called"):
        predict.read_image(bomb, max_pixels=144_000_000)
    # The limit is on height x width: one pixel less is refused.
    with pytest.raises(image_io.ImageTooLargeError):
        predict.read_image(bomb, max_pixels=143_999_999)


def test_a_file_larger_than_any_image_within_the_limit(tmp_path, monkeypatch):
    # A 10x10 PNG header followed by (sparse) gigabytes: refused before reading.
    path = tmp_path / "padded.png"
    png_of_zeros(path, 10, 10)
    with open(path, "r+b") as handle:
        handle.truncate(3 * 2**30)
    monkeypatch.setattr(cv2, "imdecode", lambda *a: pytest.fail("decoded"))
    with pytest.raises(image_io.ImageTooLargeError, match="a file of 3.0 GB"):
        image_io.read_checked(path, max_pixels=1000)


def test_unsupported_and_broken_files_name_the_file(tmp_path):
    ppm = tmp_path / "x.ppm"
    assert cv2.imwrite(str(ppm), np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="not one of the formats read: JPEG, PNG"):
        image_io.image_size(ppm)
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match=f"{empty}: empty file"):
        image_io.image_size(empty)
    zero = tmp_path / "zero.png"
    zero.write_bytes(b"\x89PNG\r\n\x1a\n" + struct.pack(">I4sII", 13, b"IHDR", 0, 5))
    with pytest.raises(ValueError, match=r"its PNG header gives 0x5 pixels"):
        image_io.image_size(zero)


def _samples(tmp_path: pathlib.Path) -> list[bytes]:
    """One small file of every extension's format, as bytes."""
    image = np.random.default_rng(1).integers(0, 256, (13, 17, 3), dtype=np.uint8)
    out = []
    for extension in image_io.IMAGE_EXTENSIONS:
        ok, data = cv2.imencode(extension, image)
        assert ok
        out.append(data.tobytes())
    return out + [_tiff(">", True, 3), _tiff("<", False, 4)]


def test_truncated_and_mutated_headers_fail_only_as_value_errors(tmp_path):
    """A bounded, seeded fuzz: every truncation of each sample's first 300
    bytes, and 200 random byte mutations of each, give a size or a
    ValueError naming the file, never another exception."""
    rng = np.random.default_rng(24)
    path = tmp_path / "fuzz"
    outcomes = {"sized": 0, "refused": 0}

    def check(data: bytes) -> None:
        path.write_bytes(data)
        try:
            kind, height, width = image_io.image_size(path)
        except ValueError as error:
            assert str(error).startswith(str(path))
            outcomes["refused"] += 1
        else:
            assert kind in image_io.FORMATS and height >= 1 and width >= 1
            outcomes["sized"] += 1

    for sample in _samples(tmp_path):
        for length in range(min(len(sample), 300)):
            check(sample[:length])
        for _ in range(200):
            data = bytearray(sample[:400])
            for position in rng.integers(0, min(len(data), 64), size=3):
                data[position] = rng.integers(0, 256)
            check(bytes(data))
    assert outcomes["sized"] > 100 and outcomes["refused"] > 1000


def test_as_rgb_uint8_conversions():
    gray = np.array([[0, 128], [255, 7]], np.uint8)
    np.testing.assert_array_equal(image_io.as_rgb_uint8(gray), np.stack([gray] * 3, -1))
    np.testing.assert_array_equal(image_io.as_rgb_uint8(gray[..., None])[..., 1], gray)
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 10
    assert image_io.as_rgb_uint8(rgba).shape == (2, 2, 3)
    assert image_io.as_rgb_uint8(rgba)[0, 0].tolist() == [200, 0, 0]  # alpha dropped
    deep = np.array([[0, 257, 65535, 385]], np.uint16)
    assert image_io.as_rgb_uint8(deep)[0, :, 0].tolist() == [
        0,
        1,
        255,
        1,
    ]  # 385/257=1.5 -> 1
    floats = np.array([[0.4, 254.6]], np.float32)
    assert image_io.as_rgb_uint8(floats)[0, :, 2].tolist() == [0, 255]


@pytest.mark.parametrize(
    "image, match",
    [
        (np.full((4, 4, 3), np.nan, np.float32), "NaN or Inf"),
        (np.full((4, 4, 3), -1.0, np.float32), r"in 0\.\.255"),
        (np.zeros((4, 4, 2), np.uint8), "got shape"),
        (np.zeros((0, 4, 3), np.uint8), "empty"),
        (np.zeros((4,), np.uint8), "got shape"),
    ],
)
def test_as_rgb_uint8_rejects_bad_images_by_name(image, match):
    with pytest.raises(ValueError, match=match):
        image_io.as_rgb_uint8(image, name="photo.jpg")
    with pytest.raises(ValueError, match="photo.jpg"):
        image_io.as_rgb_uint8(image, name="photo.jpg")
