r"""Predicts saliency and aesthetics for an image file or a folder of images.

    python -m aesthal.predict --model=runs/quickstart/saved_model \
        --input=photos/ --output=predictions/

For every image (jpg, jpeg, png, bmp, webp; any size; grayscale and RGBA are
converted to RGB, 16-bit to 8-bit) it writes, under `--output`, mirroring the
input folder's layout:

    <name>_saliency.png   the saliency map at the image's own size, 16-bit PNG
                          (scaled so the map's maximum is 65535)
    <name>_overlay.jpg    a JET heat map blended on the image
    predictions.csv       one row per image: file, height, width, p1..p10
                          (the aesthetics distribution), mean_score
    summary.json          counts of written and skipped files, with reasons

Images are streamed: only one batch is decoded at a time. Unreadable files
are reported and skipped, and counted in the summary.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import os
import pathlib
import sys
from collections.abc import Iterator

import cv2
import numpy as np
from tqdm import tqdm

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
OVERLAY_ALPHA = 0.5


@dataclasses.dataclass
class PredictSummary:
    """What a `predict_folder` run did."""

    written: int = 0
    skipped: dict[str, str] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "written": self.written,
            "skipped": len(self.skipped),
            "skipped_files": self.skipped,
        }


def list_images(path: str | os.PathLike) -> list[pathlib.Path]:
    """The image files under `path` (a file or a folder, recursive), sorted.

    Raises:
        FileNotFoundError: `path` does not exist.
    """
    path = pathlib.Path(path)
    if not path.exists():
        raise FileNotFoundError(f"--input {path} does not exist")
    if path.is_file():
        return [path]
    return sorted(
        p
        for p in path.rglob("*")
        if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
    )


def read_image(path: pathlib.Path) -> np.ndarray:
    """Decodes an image file to uint8 RGB `[h, w, 3]`.

    Raises:
        ValueError: the file cannot be decoded as an image (naming it).
    """
    data = np.fromfile(path, dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if image is None:
        raise ValueError(f"{path}: not a readable image (empty, truncated or corrupt)")
    if image.ndim == 3 and image.shape[-1] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2RGBA)
    elif image.ndim == 3 and image.shape[-1] == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    from aesthal.inference import as_rgb_uint8

    return as_rgb_uint8(image, name=str(path))


def saliency_png(saliency: np.ndarray) -> np.ndarray:
    """A density `[h, w]` as uint16, scaled so its maximum is 65535."""
    peak = float(saliency.max())
    if not peak > 0:
        return np.zeros(saliency.shape, np.uint16)
    return np.round(saliency / peak * 65535.0).astype(np.uint16)


def overlay(image: np.ndarray, saliency: np.ndarray) -> np.ndarray:
    """RGB image blended with a JET colour map of `saliency`; returns BGR uint8."""
    heat = cv2.applyColorMap(
        (saliency_png(saliency) // 257).astype(np.uint8), cv2.COLORMAP_JET
    )
    bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    return cv2.addWeighted(bgr, 1.0 - OVERLAY_ALPHA, heat, OVERLAY_ALPHA, 0.0)


def _decoded(
    files: list[pathlib.Path], summary: PredictSummary, root: pathlib.Path
) -> Iterator[tuple[tuple[pathlib.Path, np.ndarray], np.ndarray]]:
    """Yields `((path, image), image)`; records undecodable files in `summary`."""
    for path in files:
        try:
            image = read_image(path)
        except (ValueError, OSError, cv2.error) as error:
            summary.skipped[str(path.relative_to(root))] = str(error)
            continue
        yield (path, image), image


def predict_folder(
    model,
    input_path: str | os.PathLike,
    output_dir: str | os.PathLike,
    batch_size: int = 8,
    progress: bool = True,
) -> PredictSummary:
    """Writes maps, overlays and `predictions.csv` for every image under `input_path`.

    Args:
        model: an `AesthalModel`, a `.keras` path, a SavedModel folder or an
            `aesthal.inference.Predictor`.
        input_path: an image file or a folder (searched recursively).
        output_dir: where the outputs go (created).
        batch_size: images per batch (consecutive images of one size).
        progress: show a progress bar.

    Returns:
        A `PredictSummary`; also written to `output_dir/summary.json`.
    """
    from aesthal.inference import Predictor

    predictor = model if isinstance(model, Predictor) else Predictor(model)
    input_path = pathlib.Path(input_path)
    root = input_path if input_path.is_dir() else input_path.parent
    files = list_images(input_path)
    out = pathlib.Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary = PredictSummary()
    with open(out / "predictions.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            ["file", "height", "width"]
            + [f"p{s}" for s in range(1, 11)]
            + ["mean_score"]
        )
        pairs = predictor.predict_pairs(_decoded(files, summary, root), batch_size)
        bar = tqdm(total=len(files), unit="img", disable=not progress)
        for (path, image), outputs in pairs:
            relative = path.relative_to(root)
            target = out / relative.parent
            target.mkdir(parents=True, exist_ok=True)
            saliency = outputs["saliency"]
            stem = relative.stem
            cv2.imwrite(str(target / f"{stem}_saliency.png"), saliency_png(saliency))
            cv2.imwrite(str(target / f"{stem}_overlay.jpg"), overlay(image, saliency))
            writer.writerow(
                [str(relative), saliency.shape[0], saliency.shape[1]]
                + [f"{p:.6f}" for p in outputs["aesthetics"]]
                + [f"{float(outputs['aesthetics_mean']):.4f}"]
            )
            summary.written += 1
            bar.update(summary.written + len(summary.skipped) - bar.n)
        bar.update(len(files) - bar.n)
        bar.close()
    (out / "summary.json").write_text(json.dumps(summary.to_dict(), indent=2) + "\n")
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m aesthal.predict", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--model", required=True, help=".keras file or SavedModel folder"
    )
    parser.add_argument("--input", required=True, help="an image file or a folder")
    parser.add_argument("--output", required=True, help="output folder")
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--no_progress", action="store_true")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        summary = predict_folder(
            args.model,
            args.input,
            args.output,
            batch_size=args.batch_size,
            progress=not args.no_progress,
        )
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for name, reason in summary.skipped.items():
        print(f"skipped {name}: {reason}", file=sys.stderr)
    print(
        f"wrote {summary.written} predictions to {args.output}; "
        f"skipped {len(summary.skipped)} unreadable file(s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
