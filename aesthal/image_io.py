"""Image files: the formats read, and each file's size from its header alone.

A compressed file can hold far more pixels than its size suggests: a 140 KB
PNG of 12000x12000 zeros decodes to 432 MB of pixels and cost 5.1 GB in
`python -m aesthal.predict`. `image_size` reads the width and height from the
header of a JPEG, PNG, GIF, BMP, TIFF or WebP file (a few hundred bytes, no
decoding), so that `read_checked` can refuse an image past a pixel limit
before a decoder allocates anything.

The formats read are those `image_size` can measure (`FORMATS`); every tool
that lists image files in a folder takes `IMAGE_EXTENSIONS`, so a format that
is read when named is also found in a folder. The format is recognised by the
file's first bytes, not its extension.

A decoded image becomes the uint8 RGB `[h, w, 3]` every model takes with
`as_rgb_uint8` (grayscale, RGBA, 16-bit and float arrays converted).
"""

from __future__ import annotations

import os
import struct
from typing import BinaryIO, Final

import numpy as np

#: The formats read, and the file extensions (lower case) listed in folders.
FORMATS: Final[dict[str, tuple[str, ...]]] = {
    "JPEG": (".jpg", ".jpeg", ".jpe"),
    "PNG": (".png",),
    "GIF": (".gif",),
    "BMP": (".bmp", ".dib"),
    "TIFF": (".tif", ".tiff"),
    "WebP": (".webp",),
}
IMAGE_EXTENSIONS: Final[tuple[str, ...]] = tuple(
    ext for extensions in FORMATS.values() for ext in extensions
)

#: Pixels (height x width) an image file may have by default: 50 megapixels
#: (an 8660x5773 photo); decoding one costs about 2 GB in `aesthal.predict`.
DEFAULT_MAX_PIXELS: Final[int] = 50_000_000

# JPEG start-of-frame markers (baseline, progressive, lossless, arithmetic).
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# Markers without a length field: TEM, RSTn, SOI, EOI.
_JPEG_STANDALONE = frozenset([0x01, *range(0xD0, 0xDA)])
# How many JPEG segments or GIF blocks are read before giving up on the size.
_MAX_SEGMENTS = 10_000


class ImageTooLargeError(ValueError):
    """An image file has more pixels than the limit allows."""


class _Unreadable(ValueError):
    """The header is cut short or inconsistent."""


def image_size(path: str | os.PathLike) -> tuple[str, int, int]:
    """The format, height and width of an image file, from its header only.

    Args:
        path: an image file.

    Returns:
        `(format, height, width)`: a key of `FORMATS` and the stored image's
        size in pixels (before any EXIF rotation, which keeps the count).

    Raises:
        OSError: the file cannot be opened or read.
        ValueError: naming the file: it is empty, is none of `FORMATS`, or its
            header is truncated or corrupt.
    """
    with open(path, "rb") as handle:
        return _header(handle, os.fspath(path))


def read_checked(
    path: str | os.PathLike, max_pixels: int = DEFAULT_MAX_PIXELS
) -> tuple[str, int, int, bytes]:
    """Reads an image file whose header shows at most `max_pixels` pixels.

    The header is read first (`image_size`); the rest of the file only if the
    image is within the limit, and the file no larger than such an image can
    be (`max_pixels` x 16 bytes, plus 64 MiB of metadata).

    Args:
        path: an image file.
        max_pixels: the most pixels (height x width) accepted, >= 1.

    Returns:
        `(format, height, width, data)`: as `image_size`, and the file's bytes
        (for `cv2.imdecode`).

    Raises:
        ImageTooLargeError: naming the file, its size, the limit and the flag
            that raises it.
        OSError, ValueError: as `image_size`.
    """
    name = os.fspath(path)
    with open(path, "rb") as handle:
        kind, height, width = _header(handle, name)
        _check_limit(name, height, width, max_pixels)
        size = os.fstat(handle.fileno()).st_size
        if size > max_pixels * 16 + 64 * 2**20:
            raise ImageTooLargeError(
                f"{name}: a file of {size / 2**30:.1f} GB is larger than any "
                f"{kind} image within the limit of {max_pixels / 1e6:g} megapixels "
                "can be; raise the limit (--max_pixels) if the file is wanted"
            )
        _seek(handle, 0)
        data = handle.read()
    return kind, height, width, data


def check_pixels(
    path: str | os.PathLike, max_pixels: int = DEFAULT_MAX_PIXELS
) -> tuple[str, int, int]:
    """`image_size`, refusing an image of more than `max_pixels` pixels.

    Raises:
        ImageTooLargeError: as `read_checked`.
        OSError, ValueError: as `image_size`.
    """
    kind, height, width = image_size(path)
    _check_limit(os.fspath(path), height, width, max_pixels)
    return kind, height, width


def _check_limit(name: str, height: int, width: int, max_pixels: int) -> None:
    pixels = height * width
    if pixels > max_pixels:
        raise ImageTooLargeError(
            f"{name}: {width}x{height} pixels ({pixels / 1e6:.1f} megapixels) is "
            f"over the limit of {max_pixels / 1e6:g} megapixels; if the image is "
            f"wanted, raise the limit (--max_pixels={pixels}; predicting it takes "
            f"about {_decode_gib(pixels):.1f} GB of memory)"
        )


def _header(handle: BinaryIO, name: str) -> tuple[str, int, int]:
    head = handle.read(32)
    if not head:
        raise ValueError(f"{name}: empty file")
    kind = _format_of(head)
    if kind is None:
        raise ValueError(
            f"{name}: not a readable image (truncated or corrupt, or not one of "
            f"the formats read: {', '.join(FORMATS)})"
        )
    try:
        height, width = _READERS[kind](handle)
    except (ValueError, OverflowError, struct.error) as error:
        raise ValueError(
            f"{name}: not a readable image (truncated or corrupt {kind} header: "
            f"{error})"
        ) from None
    if height < 1 or width < 1:
        raise ValueError(
            f"{name}: not a readable image (its {kind} header gives "
            f"{width}x{height} pixels)"
        )
    return kind, height, width


def _decode_gib(pixels: int) -> float:
    """Rough memory of predicting one image (the 144 MP PNG took 5.1 GB)."""
    return pixels * 36 / 2**30


def _format_of(head: bytes) -> str | None:
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if head.startswith(b"BM"):
        return "BMP"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "TIFF"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WebP"
    return None


def _seek(handle: BinaryIO, offset: int, whence: int = os.SEEK_SET) -> None:
    """Seeks to an offset a header gave, which must lie within the file."""
    target = offset + (handle.tell() if whence == os.SEEK_CUR else 0)
    if not 0 <= target <= os.fstat(handle.fileno()).st_size:
        raise _Unreadable("an offset points past the end of the file")
    handle.seek(target)


def _read(handle: BinaryIO, size: int) -> bytes:
    data = handle.read(size)
    if len(data) != size:
        raise _Unreadable("cut short")
    return data


def _png(handle: BinaryIO) -> tuple[int, int]:
    _seek(handle, 8)
    length, kind, width, height = struct.unpack(">I4sII", _read(handle, 16))
    if kind != b"IHDR" or length != 13:
        raise _Unreadable("no IHDR chunk first")
    return height, width


def _gif(handle: BinaryIO) -> tuple[int, int]:
    # The decoder draws the first frame on the logical screen: both count.
    _seek(handle, 6)
    width, height, flags = struct.unpack("<HHB", _read(handle, 5))
    colour_table = 3 << ((flags & 7) + 1) if flags & 0x80 else 0
    _seek(handle, 13 + colour_table)
    for _ in range(_MAX_SEGMENTS):
        introducer = _read(handle, 1)[0]
        if introducer == 0x21:  # an extension: label, then sub-blocks
            _read(handle, 1)
            _skip_sub_blocks(handle)
        elif introducer == 0x2C:  # the first image descriptor
            left, top, frame_w, frame_h = struct.unpack("<HHHH", _read(handle, 8))
            return max(height, top + frame_h), max(width, left + frame_w)
        elif introducer == 0x3B:  # the trailer: no image at all
            raise _Unreadable("no image in the file")
        else:
            raise _Unreadable(f"unknown block 0x{introducer:02x}")
    raise _Unreadable("no image among the first blocks")


def _skip_sub_blocks(handle: BinaryIO) -> None:
    for _ in range(1 << 24):
        size = _read(handle, 1)[0]
        if size == 0:
            return
        _seek(handle, size, os.SEEK_CUR)
    raise _Unreadable("endless sub-blocks")


def _bmp(handle: BinaryIO) -> tuple[int, int]:
    _seek(handle, 14)
    (header_size,) = struct.unpack("<I", _read(handle, 4))
    if header_size == 12:  # BITMAPCOREHEADER
        width, height = struct.unpack("<HH", _read(handle, 4))
    elif header_size >= 16:
        width, height = struct.unpack("<ii", _read(handle, 8))
    else:
        raise _Unreadable(f"DIB header of {header_size} bytes")
    return abs(height), abs(width)  # a negative height is a top-down image


def _jpeg(handle: BinaryIO) -> tuple[int, int]:
    _seek(handle, 2)
    for _ in range(_MAX_SEGMENTS):
        if _read(handle, 1) != b"\xff":
            raise _Unreadable("a segment does not start with 0xff")
        marker = _read(handle, 1)[0]
        while marker == 0xFF:  # fill bytes
            marker = _read(handle, 1)[0]
        if marker in _JPEG_STANDALONE:
            if marker == 0xD9:
                raise _Unreadable("no frame header before the end of the image")
            continue
        (length,) = struct.unpack(">H", _read(handle, 2))
        if length < 2:
            raise _Unreadable(f"segment length {length}")
        if marker in _JPEG_SOF:
            _, height, width = struct.unpack(">BHH", _read(handle, 5))
            if height == 0:
                raise _Unreadable("the height is defined later (DNL), not read")
            return height, width
        _seek(handle, length - 2, os.SEEK_CUR)
    raise _Unreadable("no frame header among the first segments")


_TIFF_TYPES = {3: ("H", 2), 4: ("I", 4), 16: ("Q", 8)}  # SHORT, LONG, LONG8


def _tiff(handle: BinaryIO) -> tuple[int, int]:
    _seek(handle, 0)
    order = "<" if _read(handle, 2) == b"II" else ">"
    (version,) = struct.unpack(order + "H", _read(handle, 2))
    if version == 42:
        (offset,) = struct.unpack(order + "I", _read(handle, 4))
        count_format, entry_format, value_size = "H", "HHI", 4
    else:  # BigTIFF
        offset_size, _ = struct.unpack(order + "HH", _read(handle, 4))
        if offset_size != 8:
            raise _Unreadable(f"BigTIFF offset size {offset_size}")
        (offset,) = struct.unpack(order + "Q", _read(handle, 8))
        count_format, entry_format, value_size = "Q", "HHQ", 8
    _seek(handle, offset)
    count_size = struct.calcsize(count_format)
    (entries,) = struct.unpack(order + count_format, _read(handle, count_size))
    found = {}
    entry_size = struct.calcsize(order + entry_format) + value_size
    for _ in range(min(entries, _MAX_SEGMENTS)):
        entry = _read(handle, entry_size)
        tag, kind, _ = struct.unpack(order + entry_format, entry[:-value_size])
        if tag in (256, 257) and kind in _TIFF_TYPES:
            code, size = _TIFF_TYPES[kind]
            (found[tag],) = struct.unpack(order + code, entry[-value_size:][:size])
        if len(found) == 2:
            return found[257], found[256]
    raise _Unreadable("no ImageWidth and ImageLength in the first IFD")


def _webp(handle: BinaryIO) -> tuple[int, int]:
    _seek(handle, 12)
    chunk = _read(handle, 4)
    _read(handle, 4)  # the chunk's size
    if chunk == b"VP8 ":
        frame = _read(handle, 10)
        if frame[3:6] != b"\x9d\x01\x2a":
            raise _Unreadable("no VP8 start code")
        width, height = struct.unpack("<HH", frame[6:10])
        return height & 0x3FFF, width & 0x3FFF
    if chunk == b"VP8L":
        data = _read(handle, 5)
        if data[0] != 0x2F:
            raise _Unreadable("no VP8L signature")
        (bits,) = struct.unpack("<I", data[1:5])
        return ((bits >> 14) & 0x3FFF) + 1, (bits & 0x3FFF) + 1
    if chunk == b"VP8X":
        data = _read(handle, 10)
        width = int.from_bytes(data[4:7], "little") + 1
        height = int.from_bytes(data[7:10], "little") + 1
        return height, width
    raise _Unreadable(f"unknown first chunk {chunk!r}")


_READERS = {
    "JPEG": _jpeg,
    "PNG": _png,
    "GIF": _gif,
    "BMP": _bmp,
    "TIFF": _tiff,
    "WebP": _webp,
}


def as_rgb_uint8(image: np.ndarray, name: str = "image") -> np.ndarray:
    """Converts a decoded image to uint8 RGB `[h, w, 3]`.

    Grayscale (`[h, w]` or `[h, w, 1]`) is repeated to 3 channels, RGBA drops
    its alpha channel (colours kept as stored), uint16 is scaled to 8 bits
    (`round(v / 257)`), other numeric types are taken as values in 0..255.

    Raises:
        ValueError: naming `name`: a shape that is no image, an empty image, or
            non-uint8/uint16 values that are NaN/Inf or outside 0..255.
    """
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3 or image.shape[-1] not in (1, 3, 4):
        raise ValueError(
            f"{name}: expected an image [h, w], [h, w, 1], [h, w, 3] or [h, w, 4]; "
            f"got shape {image.shape}"
        )
    if min(image.shape[:2]) < 1:
        raise ValueError(f"{name}: the image is empty (shape {image.shape})")
    if image.dtype == np.uint16:
        image = np.round(image.astype(np.float32) / 257.0).astype(np.uint8)
    elif image.dtype != np.uint8:
        if not (np.issubdtype(image.dtype, np.number) or image.dtype == bool):
            raise ValueError(f"{name}: dtype {image.dtype} is not an image type")
        values = image.astype(np.float64)
        if not np.all(np.isfinite(values)):
            raise ValueError(f"{name}: the image has NaN or Inf values")
        if values.min() < 0 or values.max() > 255:
            raise ValueError(
                f"{name}: values must be in 0..255; got {values.min()}..{values.max()}"
            )
        image = np.round(values).astype(np.uint8)
    if image.shape[-1] == 1:
        image = np.repeat(image, 3, axis=-1)
    return np.ascontiguousarray(image[..., :3])
