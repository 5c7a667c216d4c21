"""What `POST /api/predict` computes: a photo's saliency map, crops and score.

`PredictionService` holds one `aesthal.inference.Predictor` (or `Ensemble`),
loaded once, and answers uploads from any number of server threads: the
model runs under a lock, one image at a time (a photo fills the machine's
cores by itself; the lock also bounds memory to one prediction). The map
of the last few uploads (`cache_size`, `cache_pixels` in all) is kept by the
bytes' SHA-256, so that choosing other crop ratios for a photo on the page
does not run the model again.

    service = PredictionService(aesthal.Predictor("model.keras"))
    answer = service.predict(jpeg_bytes, "photo.jpg", ratios=["1:1", "16:9"])
    answer["crops"]["16:9"]        # [top, left, height, width] in the photo's pixels
    answer["saliency_png"]         # base64 16-bit grayscale PNG at the photo's size

Uploads are read by `aesthal.predict.read_image`, the reader of `python -m
aesthal.predict`, so a photo gives the same map, orientation (EXIF applied)
and crops on the page as on the command line, and meets the same limit: a
photo of more than `max_pixels` pixels (default
`aesthal.image_io.DEFAULT_MAX_PIXELS`, 50 megapixels) is refused from its
header, before anything is decoded.
"""

from __future__ import annotations

import base64
import collections
import hashlib
import os
import tempfile
import threading
from typing import Any

import cv2
import numpy as np

from aesthal import crop, drawing, image_io, predict
from aesthal.inference import Predictor

# A photo file larger than this is refused before it is read.
DEFAULT_MAX_UPLOAD_BYTES = 64 * 2**20
# Photos of more pixels are refused from their header, before decoding (a
# small PNG can hold 12000x12000): `python -m aesthal.predict`'s limit.
DEFAULT_MAX_PIXELS = image_io.DEFAULT_MAX_PIXELS
# Map pixels the answers of recent uploads keep (about 200 MB of float32).
DEFAULT_CACHE_PIXELS = 50_000_000
# Crop ratios per request: the page offers a handful.
MAX_RATIOS = 16


class UploadError(ValueError):
    """An upload the service refuses: an HTTP status and a one-line reason.

    Attributes:
        status: the HTTP status (4xx).
    """

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def parse_ratios(text: str) -> list[str]:
    """Comma-separated aspect ratios `"1:1,16:9"` -> `["1:1", "16:9"]`.

    Blank items are dropped and repeats kept once, in order.

    Raises:
        UploadError: (400) a malformed ratio (`aesthal.crop.parse_ratio`'s
            message) or more than `MAX_RATIOS`.
    """
    ratios = list(dict.fromkeys(r.strip() for r in text.split(",") if r.strip()))
    if len(ratios) > MAX_RATIOS:
        raise UploadError(400, f"ratios: at most {MAX_RATIOS}, got {len(ratios)}")
    for ratio in ratios:
        try:
            crop.parse_ratio(ratio)
        except ValueError as error:
            raise UploadError(400, f"ratios: {error}") from None
    return ratios


def read_upload(data: bytes, name: str, max_pixels: int) -> np.ndarray:
    """Decodes an uploaded file as `python -m aesthal.predict` reads a file.

    The file goes through `aesthal.predict.read_image` itself (from a private
    temporary folder), so an upload meets the same formats, header check and
    pixel limit as a file on the command line.

    Args:
        data: the file's bytes.
        name: how messages name it (the upload's file name).
        max_pixels: the most pixels (height x width) accepted.

    Returns:
        uint8 RGB `[h, w, 3]`, EXIF orientation applied.

    Raises:
        UploadError: 413 for more than `max_pixels` pixels (read from the
            header; nothing is decoded), 400 for an empty, undecodable or
            unknown file; the message names `name`.
    """
    with tempfile.TemporaryDirectory(prefix="aesthal_serve_") as folder:
        path = os.path.join(folder, "upload")
        with open(path, "wb") as handle:
            handle.write(data)
        try:
            return predict.read_image(path, max_pixels=max_pixels)
        except image_io.ImageTooLargeError as error:
            raise UploadError(413, str(error).replace(path, name)) from None
        except (OSError, ValueError) as error:
            raise UploadError(400, str(error).replace(path, name)) from None


def encode_png(array: np.ndarray) -> str:
    """An image array (uint8 or uint16, gray or BGR) as base64 PNG text."""
    ok, encoded = cv2.imencode(".png", array)
    if not ok:
        raise RuntimeError(f"cannot encode a {array.dtype} {array.shape} PNG")
    return base64.b64encode(encoded.tobytes()).decode("ascii")


class PredictionService:
    """One model answering uploads, safe to call from several threads.

    Args:
        predictor: the model (`aesthal.Predictor` or `aesthal.Ensemble`).
        name: how the answers name the model; default `predictor.source`.
        max_upload_bytes: the largest photo file taken, in bytes.
        max_pixels: the most pixels a photo may decode to.
        cache_size: how many recent uploads keep their prediction.
        cache_pixels: the most pixels of maps kept in all (the newest is
            always kept); a map costs 4 bytes a pixel.

    Attributes:
        tasks: the tasks the model was trained on; the score is given only
            when "aesthetics" is among them.
    """

    def __init__(
        self,
        predictor: Predictor,
        name: str | None = None,
        max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        cache_size: int = 4,
        cache_pixels: int = DEFAULT_CACHE_PIXELS,
    ):
        if max_upload_bytes < 1 or max_pixels < 1:
            raise ValueError(
                f"max_upload_bytes={max_upload_bytes} and max_pixels={max_pixels} "
                "must be >= 1"
            )
        self.predictor = predictor
        self.name = name or predictor.source
        self.tasks = tuple(predictor.tasks)
        self.max_upload_bytes = int(max_upload_bytes)
        self.max_pixels = int(max_pixels)
        self.cache_size = int(cache_size)
        self.cache_pixels = int(cache_pixels)
        self._model_lock = threading.Lock()
        self._cache: collections.OrderedDict[str, dict[str, Any]] = (
            collections.OrderedDict()
        )

    def info(self) -> dict[str, Any]:
        """`GET /api/info`: the model's name and tasks, and the upload limits."""
        return {
            "model": self.name,
            "tasks": list(self.tasks),
            "max_upload_bytes": self.max_upload_bytes,
            "max_pixels": self.max_pixels,
        }

    def predict(
        self, data: bytes, filename: str | None = None, ratios: list[str] = ()
    ) -> dict[str, Any]:
        """The answer of `POST /api/predict` for one uploaded file.

        Args:
            data: the photo file's bytes.
            filename: its name, for messages.
            ratios: crop aspect ratios `"a:b"` (width:height), checked.

        Returns:
            `{"width", "height", "model", "tasks", "saliency_png": base64
            16-bit grayscale PNG of the map at the photo's size (its maximum
            65535, as `aesthal.predict` writes it), "crops": {ratio: [top,
            left, height, width] in the photo's pixels, or None where the
            window rounds to 0 pixels}}`, plus `"aesthetics_mean"` (1..10)
            only for a model trained on aesthetics; a model trained on
            aesthetics only gives no map and no crops.

        Raises:
            UploadError: 413 for a file over `max_upload_bytes` or a photo
                over `max_pixels`; 400 for an empty or undecodable file, or
                crop ratios for a model without saliency.
        """
        name = os.path.basename(filename or "") or "the upload"
        if len(data) > self.max_upload_bytes:
            raise UploadError(413, _too_large(name, len(data), self.max_upload_bytes))
        if ratios and "saliency" not in self.tasks:
            raise UploadError(
                400,
                f"{self.name} was trained on {' and '.join(self.tasks)} only: it "
                "predicts no saliency map, so it gives no crops",
            )
        key = hashlib.sha256(data).hexdigest()
        cached = self._cached(key)
        if cached is None:
            image = read_upload(data, name, self.max_pixels)
            with self._model_lock:
                outputs = self.predictor.predict(image)
            cached = {"height": image.shape[0], "width": image.shape[1]}
            if "saliency" in outputs:
                cached["saliency"] = outputs["saliency"]
                cached["saliency_png"] = encode_png(
                    drawing.saliency_png(outputs["saliency"])
                )
            if "aesthetics_mean" in outputs:
                cached["aesthetics_mean"] = float(outputs["aesthetics_mean"])
            self._store(key, cached)
        answer: dict[str, Any] = {
            "width": cached["width"],
            "height": cached["height"],
            "model": self.name,
            "tasks": list(self.tasks),
        }
        if "saliency" in cached:
            answer["saliency_png"] = cached["saliency_png"]
            answer["crops"] = crop_boxes(cached["saliency"], ratios)
        if "aesthetics_mean" in cached:
            answer["aesthetics_mean"] = round(cached["aesthetics_mean"], 4)
        return answer

    def _cached(self, key: str) -> dict[str, Any] | None:
        with self._model_lock:
            entry = self._cache.get(key)
            if entry is not None:
                self._cache.move_to_end(key)
            return entry

    def _store(self, key: str, entry: dict[str, Any]) -> None:
        with self._model_lock:
            self._cache[key] = entry
            pixels = sum(e["width"] * e["height"] for e in self._cache.values())
            while len(self._cache) > 1 and (
                len(self._cache) > self.cache_size or pixels > self.cache_pixels
            ):
                _, dropped = self._cache.popitem(last=False)
                pixels -= dropped["width"] * dropped["height"]


def crop_boxes(saliency: np.ndarray, ratios: list[str]) -> dict[str, list[int] | None]:
    """Each ratio's best window (`aesthal.crop.best_crops`), as JSON lists.

    A ratio whose window rounds to 0 pixels in a tiny photo gets None (as
    `aesthal.predict` leaves its CSV cells empty).
    """
    boxes: dict[str, list[int] | None] = {}
    for ratio in ratios:
        try:
            box = crop.best_crops(saliency, [ratio])[ratio]
        except ValueError:
            boxes[ratio] = None
            continue
        boxes[ratio] = [int(v) for v in box]
    return boxes


def _too_large(name: str, size: int, limit: int) -> str:
    return (
        f"{name}: the file is {size / 2**20:.1f} MiB, over this server's limit of "
        f"{limit / 2**20:.1f} MiB"
    )
