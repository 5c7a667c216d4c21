"""Shared code for the real-data builders: file checks, robust decoding, skips.

Every builder reads its `manual_dir` through `tf.io.gfile`, checks the layout
up front with `check_manual_files` (one error listing every missing path), and
turns each bad example into a counted skip (`SkipCounter`) instead of a crash
late in a long preparation. Nothing here ever returns a NaN.

Conventions (docs/design.md):
    image          uint8 `[H, W, 3]` RGB.
    fixation_map   uint8 `[H, W, 1]` (published maps) or uint16 `[H, W, 1]`
                   (maps we compute), same size as the image.
    fixations      float32 `[N, 2]`, `(row, column)`, 0-based pixel coordinates
                   of the stored image.
"""

from __future__ import annotations

import collections
import hashlib
import io
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import cv2
import numpy as np
import scipy.io
import tensorflow as tf
import tensorflow_datasets as tfds

logger = logging.getLogger(__name__)

# A map whose aspect ratio differs from its image's by at most this fraction is
# resized to the image (bilinear); a larger difference is a skip.
MAX_ASPECT_MISMATCH = 0.02


class BadExampleError(ValueError):
    """One example cannot be used; the builder counts it as a skip.

    Attributes:
        reason: short machine-readable key, e.g. `"corrupt_image"`.
    """

    def __init__(self, reason: str, message: str):
        super().__init__(f"{reason}: {message}")
        self.reason = reason


class SkipCounter:
    """Counts skipped examples and dropped fixation points, by reason.

    Args:
        dataset: builder name, used in log lines.
        split: split name, used in log lines.
    """

    def __init__(self, dataset: str, split: str):
        self.dataset = dataset
        self.split = split
        self.skipped: collections.Counter[str] = collections.Counter()
        self.dropped_points = 0
        self.kept = 0
        self.examples: dict[str, list[str]] = collections.defaultdict(list)

    def skip(self, error: BadExampleError, key: str) -> None:
        """Records one skipped example (logged at WARNING, one line)."""
        self.skipped[error.reason] += 1
        if len(self.examples[error.reason]) < 5:
            self.examples[error.reason].append(key)
        logger.warning("%s/%s: skipping %s (%s)", self.dataset, self.split, key, error)

    def summary(self) -> str:
        """One line: examples kept, skipped per reason, points dropped."""
        total = sum(self.skipped.values())
        reasons = ", ".join(
            f"{reason}={count} (e.g. {', '.join(self.examples[reason])})"
            for reason, count in sorted(self.skipped.items())
        )
        return (
            f"{self.dataset}/{self.split}: kept {self.kept} examples, "
            f"skipped {total}"
            + (f" [{reasons}]" if reasons else "")
            + f"; dropped {self.dropped_points} fixation points outside the image"
        )

    def log_summary(self) -> None:
        """Logs `summary()`: WARNING if anything was skipped, else INFO."""
        level = logging.WARNING if self.skipped else logging.INFO
        logger.log(level, "%s", self.summary())


def join(*parts: str) -> str:
    """`os.path.join` for gfile paths (str in, str out)."""
    return str(tf.io.gfile.join(*[str(p) for p in parts]))


def check_manual_files(
    manual_dir: str,
    files: Sequence[str] = (),
    globs: Sequence[str] = (),
    *,
    dataset: str,
    instructions: str,
    downloads: bool = False,
) -> None:
    """Checks the manual_dir layout; raises once, naming every missing path.

    Args:
        manual_dir: the folder the user filled.
        files: paths relative to `manual_dir` that must exist (files or dirs).
        globs: patterns relative to `manual_dir` that must match >= 1 file.
        dataset: builder name, for the message.
        instructions: the builder's `MANUAL_DOWNLOAD_INSTRUCTIONS`, appended.
        downloads: the builder downloads the files itself when the manual_dir
            holds none of them; the message then says so.

    Raises:
        FileNotFoundError: if anything is missing; the message lists all of it.
    """
    missing = []
    if not tf.io.gfile.isdir(manual_dir):
        missing.append(f"{manual_dir} (the manual_dir itself)")
    else:
        for rel in files:
            if not tf.io.gfile.exists(join(manual_dir, rel)):
                missing.append(join(manual_dir, rel))
        for pattern in globs:
            if not tf.io.gfile.glob(join(manual_dir, pattern)):
                missing.append(f"{join(manual_dir, pattern)} (no file matches)")
    if missing:
        listing = "\n  ".join(missing)
        download_note = (
            f"\n\nOr, on a machine with network access: leave manual_dir unset "
            f"(or point it at a folder holding none of these files) and {dataset} "
            "downloads its files automatically."
            if downloads
            else ""
        )
        raise FileNotFoundError(
            f"{dataset}: {len(missing)} expected path(s) missing from the "
            f"manual_dir:\n  {listing}{download_note}\n\n{instructions}"
        )


def manual_dir_holding(
    dl_manager: tfds.download.DownloadManager, entries: Sequence[str]
) -> str | None:
    """The manual_dir when it holds any of `entries`, else None.

    How a builder that can download decides between its two sources: files
    the user placed by hand always win; a manual_dir that is unset, absent,
    empty or holds none of the data set's top-level `entries` means "download
    them". A manual_dir holding some but not all files is still the manual
    source, so `check_manual_files` names what is missing instead of a
    download silently replacing the user's copy.

    Args:
        dl_manager: the builder's download manager.
        entries: top-level names of the manual layout, e.g. `["data"]`.

    Returns:
        The manual_dir as a string, or None to download.
    """
    try:
        # TFDS raises AssertionError for an absent or empty manual_dir (its
        # default is <data_dir>/downloads/manual).
        manual_dir = str(dl_manager.manual_dir)
    except AssertionError:
        return None
    if any(tf.io.gfile.exists(join(manual_dir, entry)) for entry in entries):
        return manual_dir
    return None


class DownloadError(OSError):
    """A builder's download failed; the message gives the manual_dir fallback."""


def download(
    fetch: Callable[[Any], Any], urls: Any, *, dataset: str, instructions: str
) -> Any:
    """`fetch(urls)` (a `dl_manager` method); a failure names the manual fallback.

    Offline, TFDS's downloader retries each URL for minutes and then raises a
    connection error that says nothing about the manual_dir; this re-raises
    any failure (network, checksum, HTTP status) with the builder's
    instructions, chaining the original error.

    Args:
        fetch: `dl_manager.download` or `dl_manager.download_and_extract`.
        urls: what `fetch` takes: a URL or a dict of them.
        dataset: builder name, for the message.
        instructions: the builder's `MANUAL_DOWNLOAD_INSTRUCTIONS`.

    Returns:
        What `fetch` returns: local path(s), same structure as `urls`.

    Raises:
        DownloadError: `fetch` raised.
    """
    try:
        return fetch(urls)
    except Exception as error:  # any failure gets the same way out
        raise DownloadError(
            f"{dataset}: the manual_dir holds none of its files, and downloading "
            f"them failed ({type(error).__name__}: {error}).\nWithout network "
            f"access, place the files in a manual_dir:\n\n{instructions}"
        ) from error


def extracted_folder(extracted: str, folder: str, pattern: str, *, url: str) -> str:
    """Where a downloaded archive's data landed: `<extracted>/<folder>` or `extracted`.

    Upstream zips are re-published now and then, with or without their top
    folder (CAT2000's `trainSet.zip` has had both); whichever of the two
    holds files matching `pattern` is the answer.

    Args:
        extracted: the folder TFDS extracted the archive into.
        folder: the archive's usual top folder, e.g. `"ALLSTIMULI"`.
        pattern: a glob relative to the answer that must match, e.g. `"*.jpeg"`.
        url: the archive's URL, for the message.

    Raises:
        FileNotFoundError: neither holds `pattern`; names both places and what
            the archive did contain.
    """
    candidates = [join(extracted, folder), str(extracted)]
    for candidate in candidates:
        if tf.io.gfile.glob(join(candidate, pattern)):
            return candidate
    found = (
        sorted(tf.io.gfile.listdir(extracted)) if tf.io.gfile.isdir(extracted) else []
    )
    raise FileNotFoundError(
        f"{url} extracted to {extracted}, but no file matches {folder}/{pattern} "
        f"or {pattern} there (top level holds {found[:10]}). The upstream archive "
        "has changed; place the files in the manual_dir instead."
    )


def list_files(directory: str, suffixes: Iterable[str]) -> list[str]:
    """Sorted base names in `directory` ending in one of `suffixes` (any case)."""
    if not tf.io.gfile.isdir(directory):
        return []
    suffixes = tuple(s.lower() for s in suffixes)
    return sorted(
        name
        for name in tf.io.gfile.listdir(directory)
        if name.lower().endswith(suffixes) and not name.endswith("/")
    )


def _is_three_component_jpeg(data: bytes) -> bool:
    """Whether `data` is a JPEG whose header declares 3 colour components.

    `tf.image.extract_jpeg_shape` reads only the header (~0.6 ms for an
    800x600 OSIE image, against ~4 ms for cv2 to decode it). The magic-bytes
    test first is `tf.io.is_jpeg`'s own rule; it keeps libjpeg from being
    called (and logging) on PNGs.
    """
    if not data.startswith(b"\xff\xd8\xff"):
        return False
    try:
        shape = tf.image.extract_jpeg_shape(data)
    except tf.errors.InvalidArgumentError:
        return False
    return int(shape[2]) == 3


def _to_uint8(array: np.ndarray, path: str) -> np.ndarray:
    if array.dtype == np.uint8:
        return array
    if array.dtype == np.uint16:
        # 16-bit -> 8-bit: rounds v / 257, so 65535 -> 255 and 0 -> 0.
        return np.round(array.astype(np.float32) / 257.0).astype(np.uint8)
    raise BadExampleError("unsupported_dtype", f"{path}: pixel dtype {array.dtype}")


def require_files(*paths: str) -> None:
    """Raises a `missing_file` skip naming every path that does not exist."""
    missing = [path for path in paths if not tf.io.gfile.exists(path)]
    if missing:
        raise BadExampleError("missing_file", ", ".join(missing) + " not found")


def read_bytes(path: str) -> bytes:
    """Reads a file through gfile; a missing file is a `missing_file` skip."""
    if not tf.io.gfile.exists(path):
        raise BadExampleError("missing_file", f"{path} does not exist")
    with tf.io.gfile.GFile(path, "rb") as f:
        return f.read()


def _imdecode(data: bytes) -> np.ndarray | None:
    """cv2.imdecode(IMREAD_UNCHANGED); None for empty or undecodable bytes."""
    if not data:
        return None
    try:
        array = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error:
        return None
    return None if array is None or array.size == 0 else array


def read_rgb_image(path: str) -> tuple[np.ndarray, bytes | np.ndarray]:
    """Decodes an image to uint8 RGB, converting where it is safe.

    Grayscale -> RGB (channel copied), RGBA / gray+alpha -> RGB (alpha dropped,
    no compositing), 16-bit -> 8-bit (rounded v / 257). A file cv2 cannot
    decode (corrupt, truncated, not an image) is a skip.

    Args:
        path: image file (JPEG, PNG, ...).

    Returns:
        `(rgb, encoded)`: `rgb` uint8 `[H, W, 3]`; `encoded` is the original
        file bytes when they are already an 8-bit 3-component JPEG (stored
        as-is, no re-encoding), otherwise `rgb` itself (TFDS encodes it).

    Raises:
        BadExampleError: `missing_file`, `corrupt_image`, `unsupported_dtype`.
    """
    data = read_bytes(path)
    array = _imdecode(data)
    if array is None:
        raise BadExampleError(
            "corrupt_image", f"{path}: cannot decode ({len(data)} bytes)"
        )
    array = _to_uint8(array, path)
    if array.ndim == 2:
        rgb = cv2.cvtColor(array, cv2.COLOR_GRAY2RGB)
    elif array.shape[2] == 1:
        rgb = cv2.cvtColor(array[..., 0], cv2.COLOR_GRAY2RGB)
    elif array.shape[2] == 2:  # gray + alpha
        rgb = cv2.cvtColor(array[..., 0], cv2.COLOR_GRAY2RGB)
    elif array.shape[2] == 3:
        rgb = cv2.cvtColor(array, cv2.COLOR_BGR2RGB)
    elif array.shape[2] == 4:
        rgb = cv2.cvtColor(array, cv2.COLOR_BGRA2RGB)
    else:
        raise BadExampleError(
            "corrupt_image", f"{path}: {array.shape[2]} channels is not an image"
        )
    if array.dtype == np.uint8 and array.ndim == 3 and _is_three_component_jpeg(data):
        return rgb, data
    return rgb, rgb


def read_gray_map(path: str) -> np.ndarray:
    """Decodes a published saliency map to uint8 `[H, W]`.

    A 3- or 4-channel map is turned to gray (cv2 luma); a 16-bit map to
    8-bit (rounded v / 257).

    Raises:
        BadExampleError: `missing_file`, `corrupt_map`, `unsupported_dtype`.
    """
    data = read_bytes(path)
    array = _imdecode(data)
    if array is None:
        raise BadExampleError("corrupt_map", f"{path}: cannot decode")
    array = _to_uint8(array, path)
    if array.ndim == 3:
        if array.shape[2] == 1:
            array = array[..., 0]
        elif array.shape[2] in (2,):
            array = array[..., 0]
        elif array.shape[2] == 3:
            array = cv2.cvtColor(array, cv2.COLOR_BGR2GRAY)
        else:
            array = cv2.cvtColor(array, cv2.COLOR_BGRA2GRAY)
    return np.ascontiguousarray(array)


def fit_map_to_image(
    saliency_map: np.ndarray, image_shape: Sequence[int], path: str
) -> np.ndarray:
    """Returns `saliency_map` at the image's size, or raises a skip.

    Policy: same size -> unchanged; aspect ratio within `MAX_ASPECT_MISMATCH`
    -> bilinear resize to the image (the published maps are just stored at
    another resolution); otherwise `map_size_mismatch` (a map for another
    image shape cannot be trusted).

    Args:
        saliency_map: `[h, w]` map, any dtype cv2 resizes.
        image_shape: `(H, W, ...)` of the image.
        path: map file, for messages.

    Raises:
        BadExampleError: `map_size_mismatch`.
    """
    height, width = int(image_shape[0]), int(image_shape[1])
    h, w = saliency_map.shape[:2]
    if (h, w) == (height, width):
        return saliency_map
    if abs((w / h) / (width / height) - 1.0) > MAX_ASPECT_MISMATCH:
        raise BadExampleError(
            "map_size_mismatch",
            f"{path}: map is {w}x{h} but its image is {width}x{height}",
        )
    return cv2.resize(saliency_map, (width, height), interpolation=cv2.INTER_LINEAR)


def check_nonzero(saliency_map: np.ndarray, path: str) -> None:
    """An all-zero map would give a 0/0 = NaN target: a `zero_map` skip."""
    if not np.any(saliency_map):
        raise BadExampleError("zero_map", f"{path}: the map is all zeros")


def keep_points_in_image(
    points: np.ndarray, shape: Sequence[int], counter: SkipCounter | None = None
) -> np.ndarray:
    """Drops NaN points and points whose nearest pixel is outside the image.

    Args:
        points: float32 `[N, 2]` `(row, column)`, 0-based.
        shape: `(H, W, ...)` of the image.
        counter: if given, its `dropped_points` grows by the number dropped.

    Returns:
        float32 `[M, 2]`, M <= N, every row in `[-0.5, H - 0.5) x [-0.5, W - 0.5)`.
    """
    points = np.asarray(points, np.float32).reshape(-1, 2)
    height, width = float(shape[0]), float(shape[1])
    ok = (
        np.all(np.isfinite(points), axis=1)
        & (points[:, 0] >= -0.5)
        & (points[:, 0] < height - 0.5)
        & (points[:, 1] >= -0.5)
        & (points[:, 1] < width - 0.5)
    )
    if counter is not None:
        counter.dropped_points += int(np.sum(~ok))
    return points[ok]


def to_uint16_map(saliency_map: np.ndarray) -> np.ndarray:
    """float `[H, W]` in [0, 1] -> uint16 `[H, W, 1]` (round(v * 65535))."""
    scaled = np.round(np.clip(saliency_map, 0.0, 1.0) * 65535.0)
    return scaled.astype(np.uint16)[..., None]


def encode_png(saliency_map: np.ndarray) -> bytes:
    """PNG bytes of a uint8/uint16 `[H, W, 1]` map (fast zlib level 1).

    cv2 at level 1 is ~3x faster than `tf.io.encode_png` for 16-bit maps and
    the files are within 3% of the size; TFDS stores the bytes as they are.
    """
    ok, encoded = cv2.imencode(".png", saliency_map, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise ValueError(f"cannot PNG-encode a map of {saliency_map.shape}")
    return encoded.tobytes()


def hashed_test_set(names: Iterable[str], num_test: int) -> set[str]:
    """A fixed test subset: the `num_test` names with the smallest SHA-256.

    Independent of file order and of the platform; adding or removing other
    files moves at most the boundary element.

    Args:
        names: unique identifiers (e.g. relative file names).
        num_test: how many go to test.

    Returns:
        The chosen names.
    """
    ranked = sorted(names, key=lambda n: hashlib.sha256(n.encode("utf-8")).digest())
    return set(ranked[: max(0, num_test)])


def saliency_features(map_dtype: type = np.uint8) -> tfds.features.FeaturesDict:
    """The design's features for a saliency data set (no aesthetics labels).

    Args:
        map_dtype: `np.uint8` (published maps) or `np.uint16` (computed maps).
    """
    return tfds.features.FeaturesDict(
        {
            "image": tfds.features.Image(
                shape=(None, None, 3), dtype=np.uint8, encoding_format="jpeg"
            ),
            "image/filename": tfds.features.Text(),
            "has_saliency": tfds.features.Scalar(dtype=np.bool_),
            "has_aesthetics": tfds.features.Scalar(dtype=np.bool_),
            "fixation_map": tfds.features.Image(
                shape=(None, None, 1), dtype=map_dtype, encoding_format="png"
            ),
            "fixations": tfds.features.Tensor(shape=(None, 2), dtype=np.float32),
        }
    )


def published_map_example(
    filename: str,
    image_path: str,
    map_path: str | None,
    points: Callable[[tuple[int, int]], np.ndarray] | None,
    counter: SkipCounter,
) -> dict:
    """One example of a data set that ships its own (uint8) fixation maps.

    Args:
        filename: value of `image/filename`.
        image_path: the stimulus.
        map_path: the published map, or None for an unlabelled example
            (`has_saliency` False, all-zero map, no fixations).
        points: given the image's `(H, W)`, returns float32 `[N, 2]`
            `(row, column)` 0-based points; None for no points.
        counter: collects dropped points.

    Returns:
        A feature dict for `saliency_features(np.uint8)`.

    Raises:
        BadExampleError: any reason listed in this module.
    """
    rgb, encoded = read_rgb_image(image_path)
    height, width = rgb.shape[:2]
    if map_path is None:
        return {
            "image": encoded,
            "image/filename": filename,
            "has_saliency": False,
            "has_aesthetics": False,
            "fixation_map": np.zeros((height, width, 1), np.uint8),
            "fixations": np.zeros((0, 2), np.float32),
        }
    saliency_map = fit_map_to_image(read_gray_map(map_path), rgb.shape, map_path)
    check_nonzero(saliency_map, map_path)
    fixation_points = np.zeros((0, 2), np.float32)
    if points is not None:
        fixation_points = keep_points_in_image(
            points((height, width)), rgb.shape, counter
        )
    return {
        "image": encoded,
        "image/filename": filename,
        "has_saliency": True,
        "has_aesthetics": False,
        "fixation_map": encode_png(saliency_map[..., None]),
        "fixations": fixation_points,
    }


def generate(
    items: Iterable[tuple[str, Callable[[], dict]]], counter: SkipCounter
) -> Iterator[tuple[str, dict]]:
    """Runs each `(key, make_example)`; a `BadExampleError` becomes a skip.

    Logs the counter's summary once the items are exhausted (the end of the
    split's preparation).

    Raises:
        ValueError: if every item was skipped (TFDS cannot write an empty
            split); the message carries the skip summary.
    """
    for key, make_example in items:
        try:
            example = make_example()
        except BadExampleError as error:
            counter.skip(error, key)
            continue
        counter.kept += 1
        yield key, example
    counter.log_summary()
    if counter.kept == 0:
        raise ValueError(
            f"{counter.dataset}/{counter.split}: no example left to write. "
            + counter.summary()
        )


def load_mat(path: str) -> dict:
    """`scipy.io.loadmat(squeeze_me=True, struct_as_record=False)` via gfile.

    Raises:
        BadExampleError: `missing_file`, or `bad_mat` if scipy cannot read it.
    """
    data = read_bytes(path)
    try:
        return scipy.io.loadmat(
            io.BytesIO(data), squeeze_me=True, struct_as_record=False
        )
    except Exception as error:  # scipy raises several types for bad files
        raise BadExampleError("bad_mat", f"{path}: {error}") from error
