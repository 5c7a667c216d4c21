r"""Predicts saliency and aesthetics for an image file or a folder of images.

    python -m aesthal.predict --model=runs/quickstart/model.keras \
        --input=photos/ --output=predictions/

`--model` is a `.keras` file (loaded in Keras safe mode) or a SavedModel folder
(`aesthal.export_saved_model`); several, comma-separated, `--mirror` and
`--scales=1,1.25,1.5` (each model also run at 1.25 and 1.5 times its input size;
needs `.keras` files) average their maps (`aesthal.inference.Ensemble`).

For every image under `--input` (a file, or a folder searched recursively for
the extensions of `aesthal.image_io.FORMATS`: JPEG, PNG, GIF, BMP, TIFF, WebP;
any size up to `--max_pixels`; grayscale and RGBA are converted to RGB, 16-bit
to 8-bit, EXIF orientation is applied) it writes, under `--output`, mirroring
the input folder's layout:

    <name>_saliency.png   the saliency map at the image's own size, a 16-bit
                          grayscale PNG scaled so that the map's maximum is 65535
    <name>_overlay.jpg    a JET heat map of the map blended 50/50 on the image
    <name>_crop_<a>x<b>.<ext>  with --crops=a:b,...: the image cropped to the
                          window of ratio a:b (width:height) that holds the most
                          predicted fixation mass (`aesthal.crop.best_crops`),
                          in the input's format (PNG for a file without
                          an image extension)
    predictions.csv       one row per image: file, height, width, p1..p10 (the
                          aesthetics distribution over scores 1..10), mean_score;
                          with --crops, crop_<a>x<b>_top/_left/_height/_width
                          per ratio (pixels of the image as shown)
    summary.json          counts of files found, written and skipped, with the
                          reason for each skipped file

(`<name>` is the file name without its extension; two inputs in one folder
that differ only by extension keep it: `photo_jpg_saliency.png`.)

Heights, widths and crop boxes are those of the image as a person sees it
(after its EXIF orientation), the orientation the maps and crops are written in.

    python -m aesthal.predict --model=runs/osie_vgg16_hed/saved_model \
        --input=photos/ --output=thumbnails/ --crops=1:1,16:9,9:16,4:5

Images are streamed: a few are decoded ahead, one batch is predicted at a time,
so a folder of any size runs in constant memory. Unreadable files (empty,
truncated, not an image) are reported, skipped and counted in the summary. So
is an image of more than `--max_pixels` pixels (default 50 megapixels): its
size is read from the file's header, before anything is decoded (a small
compressed file can hold gigabytes of pixels); named alone as `--input`, it is
a usage error.
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import contextlib
import csv
import dataclasses
import errno
import json
import os
import pathlib
import sys
import time
import warnings
from collections.abc import Iterator, Sequence

import cv2
import numpy as np
from tqdm import tqdm

from aesthal import crop, image_io
from aesthal.config import SCORES, TASKS
from aesthal.drawing import overlay, saliency_png

#: The extensions listed in a folder: those of every format `read_image` reads.
IMAGE_EXTENSIONS = image_io.IMAGE_EXTENSIONS
CSV_HEADER = ["file", "height", "width", *(f"p{s}" for s in SCORES), "mean_score"]
BOX_FIELDS = ("top", "left", "height", "width")
CROP_JPEG_QUALITY = 95


def crop_tag(ratio: str) -> str:
    """A ratio as it appears in file and column names: `"16:9"` -> `"16x9"`."""
    a, b = crop.parse_ratio(ratio)
    return f"{a}x{b}"


def crop_columns(ratios: list[str]) -> list[str]:
    """The CSV columns of the boxes: `crop_16x9_top`, `..._left`, `..._height`, ..."""
    return [f"crop_{crop_tag(r)}_{field}" for r in ratios for field in BOX_FIELDS]


@dataclasses.dataclass
class PredictSummary:
    """What a `predict_folder` run did.

    Attributes:
        found: image files found (by extension).
        written: images whose outputs were written.
        skipped: `{file (relative to the input folder): reason}` for the files
            that could not be read or were over the pixel limit.
        too_large: how many of `skipped` were over the pixel limit.
        seconds: wall time of the run.
    """

    found: int = 0
    written: int = 0
    skipped: dict[str, str] = dataclasses.field(default_factory=dict)
    too_large: int = 0
    seconds: float = 0.0
    tasks: tuple[str, ...] = TASKS

    def to_dict(self) -> dict:
        return {
            "found": self.found,
            "written": self.written,
            "skipped": len(self.skipped),
            "too_large": self.too_large,
            "skipped_files": self.skipped,
            "seconds": round(self.seconds, 3),
            "tasks": list(self.tasks),
        }


def list_images(
    path: str | os.PathLike, exclude: str | os.PathLike | None = None
) -> list[pathlib.Path]:
    """The image files under `path` (a file, or a folder searched recursively), sorted.

    Args:
        path: an image file or a folder.
        exclude: a folder whose files are left out (the output folder, when
            it lies inside the input folder).

    Raises:
        FileNotFoundError: `path` does not exist.
    """
    path = pathlib.Path(path)
    if not path.exists():
        raise FileNotFoundError(f"--input {path} does not exist")
    if path.is_file():
        return [path]
    excluded = pathlib.Path(exclude).resolve() if exclude is not None else None
    files = []
    for p in path.rglob("*"):
        if p.suffix.lower() not in IMAGE_EXTENSIONS:
            continue
        # A broken or self-referencing link is listed too: reading it fails,
        # so it is counted as skipped with its reason instead of vanishing.
        broken_link = p.is_symlink() and not p.exists()
        if not (p.is_file() or broken_link):
            continue
        where = p.parent.resolve() / p.name if broken_link else p.resolve()
        if excluded is not None and where.is_relative_to(excluded):
            continue
        files.append(p)
    return sorted(files)


def read_image(
    path: str | os.PathLike, max_pixels: int = image_io.DEFAULT_MAX_PIXELS
) -> np.ndarray:
    """Decodes an image file to uint8 RGB `[h, w, 3]`.

    The formats read are `aesthal.image_io.FORMATS`, recognised by content.
    The image's size is read from its header first: one of more than
    `max_pixels` pixels is refused before anything is decoded. EXIF
    orientation is applied (the map matches the image as viewers show it);
    alpha is dropped; grayscale is repeated; 16-bit is scaled to 8-bit.

    Raises:
        aesthal.image_io.ImageTooLargeError: over `max_pixels` (a ValueError).
        ValueError: the file is empty, of another format, or cannot be decoded
            (truncated, corrupt, not an image), naming it.
        OSError: the file cannot be read.
    """
    *_, data = image_io.read_checked(path, max_pixels)
    data = np.frombuffer(data, dtype=np.uint8)
    try:
        image = cv2.imdecode(data, cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR)
    except cv2.error as error:
        raise ValueError(f"{path}: cannot be decoded ({error.err})") from error
    if image is None:
        raise ValueError(f"{path}: not a readable image (truncated or corrupt)")
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    return image_io.as_rgb_uint8(image, name=str(path))


def output_names(files: list[pathlib.Path], root: pathlib.Path) -> list[pathlib.Path]:
    """Output path prefixes (relative to the output folder), one per file.

    `a/photo.jpg` gives `a/photo`; when two files of one folder share a stem
    (`photo.jpg`, `photo.png`) they keep their extension (`a/photo_jpg`).
    """
    relative = [f.relative_to(root) for f in files]
    counts = collections.Counter((r.parent, r.stem) for r in relative)
    return [
        r.parent
        / (r.stem if counts[(r.parent, r.stem)] == 1 else r.stem + "_" + r.suffix[1:])
        for r in relative
    ]


def _decoded(
    files: list[pathlib.Path],
    root: pathlib.Path,
    summary: PredictSummary,
    bar: tqdm,
    read_ahead: int,
    max_pixels: int,
) -> Iterator[tuple[tuple[pathlib.Path, np.ndarray], np.ndarray]]:
    """Yields `((file, image), image)` in order, decoding up to `read_ahead` ahead.

    Unreadable files, and images over `max_pixels`, are recorded in `summary`
    and skipped.
    """
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        pending = collections.deque()
        queue = iter(files)
        for path in queue:
            pending.append((path, pool.submit(read_image, path, max_pixels)))
            if len(pending) >= read_ahead:
                break
        while pending:
            path, future = pending.popleft()
            next_path = next(queue, None)
            if next_path is not None:
                pending.append(
                    (next_path, pool.submit(read_image, next_path, max_pixels))
                )
            try:
                image = future.result()
            except (ValueError, OSError) as error:
                summary.skipped[str(path.relative_to(root))] = str(error)
                if isinstance(error, image_io.ImageTooLargeError):
                    summary.too_large += 1
                bar.update(1)
                continue
            yield (path, image), image


def predict_folder(
    model,
    input_path: str | os.PathLike,
    output_dir: str | os.PathLike,
    batch_size: int = 8,
    progress: bool = True,
    crops: list[str] | tuple[str, ...] = (),
    mirror: bool = False,
    scales: Sequence[float] | str = (1.0,),
    max_pixels: int = image_io.DEFAULT_MAX_PIXELS,
) -> PredictSummary:
    """Writes maps, overlays and `predictions.csv` for every image under `input_path`.

    Args:
        model: an `AesthalModel`, a `.keras` path, a SavedModel folder, a
            string of comma-separated paths (their maps are averaged:
            `aesthal.inference.Ensemble`) or an `aesthal.inference.Predictor`.
        input_path: an image file or a folder (searched recursively).
        output_dir: where the outputs go (created).
        batch_size: images per model call.
        progress: show a progress bar (on a terminal).
        crops: aspect ratios `"a:b"` (width:height): for each, the image's
            best window on its predicted map (`aesthal.crop.best_crops`) is
            written as `<name>_crop_<a>x<b>.<ext>` and its box added to the
            CSV (a window that rounds to 0 pixels in a tiny image leaves its
            cells empty and no file).
        mirror: also average the map of each image's mirror image
            (`aesthal.inference.Ensemble`); ignored when `model` is a
            `Predictor`, which decides that itself.
        scales: also average the maps of each model run at these factors of
            its input size (`aesthal.inference.Ensemble`; numbers or a string
            "1,1.25,1.5"; other than 1 needs `.keras` files); ignored when
            `model` is a `Predictor`.
        max_pixels: images of more pixels (height x width, read from the
            file's header) are skipped with the reason, undecoded.

    Returns:
        A `PredictSummary`; also written to `output_dir/summary.json`.

    Raises:
        FileNotFoundError: `input_path` does not exist.
        ValueError: no image files under `input_path`, a single `input_path`
            file over `max_pixels` (`aesthal.image_io.ImageTooLargeError`), a
            bad `max_pixels`, a model that cannot be loaded
            (`aesthal.inference.ModelLoadError`), a malformed ratio in `crops`
            or bad `scales` (all checked before any image is decoded).
        OSError: an output file cannot be written (naming it).
    """
    from aesthal.inference import Ensemble, Predictor, make_predictor, parse_scales

    scales = parse_scales(scales)
    if (
        isinstance(max_pixels, bool)
        or not isinstance(max_pixels, int)
        or max_pixels < 1
    ):
        raise ValueError(f"max_pixels must be an int >= 1, got {max_pixels!r}")
    crops = list(dict.fromkeys(crops))
    for ratio in crops:
        crop.parse_ratio(ratio)
    start = time.perf_counter()
    input_path = pathlib.Path(input_path)
    out = pathlib.Path(output_dir)
    if not input_path.exists():
        raise FileNotFoundError(f"--input {input_path} does not exist")
    root = input_path if input_path.is_dir() else input_path.parent
    check_output_folder(input_path, out)
    files = list_images(input_path, exclude=out)
    if not files:
        raise ValueError(
            f"--input {input_path}: no image files ({', '.join(IMAGE_EXTENSIONS)})"
        )
    if input_path.is_file():
        # One image over the limit is a usage error, before the model loads
        # (an unreadable one is reported below, as in a folder).
        try:
            image_io.check_pixels(input_path, max_pixels)
        except image_io.ImageTooLargeError:
            raise
        except (ValueError, OSError):
            pass
    if isinstance(model, Predictor):
        predictor = model
    elif isinstance(model, str | os.PathLike):
        predictor = make_predictor(model, mirror=mirror, scales=scales)
    elif mirror or scales != (1.0,):
        predictor = Ensemble([model], mirror=mirror, scales=scales)
    else:
        predictor = Predictor(model)
    tasks = tuple(predictor.tasks)
    if crops and "saliency" not in tasks:
        raise ValueError(
            "--crops needs a saliency map, but the model was trained on "
            f"{' and '.join(tasks)} only."
        )
    names = dict(zip(files, output_names(files, root), strict=True))
    summary = PredictSummary(found=len(files), tasks=tasks)
    header = CSV_HEADER[:3]
    if "aesthetics" in tasks:
        header += CSV_HEADER[3:]
    bar = tqdm(total=len(files), unit="img", disable=None if progress else True)
    table = out / "predictions.csv"
    with _naming(table):
        handle = open(table, "w", newline="")
    try:
        writer = csv.writer(handle)
        with _naming(table):
            writer.writerow(header + crop_columns(crops))
        decoded = _decoded(
            files, root, summary, bar, read_ahead=2 * batch_size, max_pixels=max_pixels
        )
        # Encoding and writing a photo's outputs (PNG, overlay, crops) runs in
        # a thread pool while the model maps the next photos: OpenCV and NumPy
        # release the GIL. Rows are written in input order as photos finish;
        # at most `2 * batch_size` photos wait, so memory stays bounded.
        with concurrent.futures.ThreadPoolExecutor(
            max_workers=max(2, os.cpu_count() or 1)
        ) as pool:
            pending: collections.deque = collections.deque()

            def finish_oldest() -> None:
                row = pending.popleft().result()
                with _naming(table):
                    writer.writerow(row)
                summary.written += 1
                bar.update(1)

            try:
                for (path, image), outputs in predictor.predict_pairs(
                    decoded, batch_size
                ):
                    pending.append(
                        pool.submit(
                            _write_outputs,
                            path,
                            image,
                            outputs,
                            str(path.relative_to(root)),
                            out / names[path],
                            crops,
                        )
                    )
                    while pending and (
                        len(pending) > 2 * batch_size or pending[0].done()
                    ):
                        finish_oldest()
                while pending:
                    finish_oldest()
            finally:
                for future in pending:
                    future.cancel()
    finally:
        with _naming(table):
            handle.close()
    bar.close()
    summary.seconds = time.perf_counter() - start
    text = json.dumps(summary.to_dict(), indent=2) + "\n"
    write_file(out / "summary.json", text.encode())
    return summary


def _write_outputs(
    path: pathlib.Path,
    image: np.ndarray,
    outputs: dict,
    relative: str,
    name: pathlib.Path,
    crops: list[str],
) -> list:
    """Writes one photo's map, overlay and crops under `name`; returns its CSV row."""
    with _naming(name.parent):
        name.parent.mkdir(parents=True, exist_ok=True)
    prefix = str(name)
    row = [relative, *image.shape[:2]]
    if "aesthetics" in outputs:
        row += [f"{p:.6f}" for p in outputs["aesthetics"]]
        row += [f"{float(outputs['aesthetics_mean']):.4f}"]
    if "saliency" in outputs:
        saliency = outputs["saliency"]
        write_image(prefix + "_saliency.png", saliency_png(saliency))
        write_image(prefix + "_overlay.jpg", overlay(image, saliency))
        row += _write_crops(image, saliency, crops, prefix, path.suffix)
    return row


class OutputWriteError(OSError):
    """An output file could not be written; the message names it."""


def write_file(path: str | os.PathLike, data: bytes) -> None:
    """Writes `data` to `path`.

    Raises:
        OutputWriteError: naming `path` and the reason (e.g. a full disk,
            which the operating system reports without a file name).
    """
    with _naming(path):
        with open(path, "wb") as handle:
            handle.write(data)


def write_image(
    path: str | os.PathLike, image: np.ndarray, params: Sequence[int] = ()
) -> None:
    """Encodes `image` (as `cv2.imwrite` takes it) in the format of `path`'s
    extension and writes it.

    Raises:
        OutputWriteError: naming `path`: the image cannot be encoded in that
            format, or the file cannot be written.
    """
    try:
        encoded, buffer = cv2.imencode(pathlib.Path(path).suffix, image, list(params))
    except cv2.error as error:
        encoded, reason = False, error.err
    else:
        reason = "the encoder failed"
    if not encoded:
        raise OutputWriteError(
            f"cannot write {path}: cannot encode the image ({reason})"
        )
    write_file(path, buffer.tobytes())


@contextlib.contextmanager
def _naming(path: str | os.PathLike) -> Iterator[None]:
    """Turns an `OSError` inside into an `OutputWriteError` naming `path`."""
    try:
        yield
    except OutputWriteError:
        raise
    except OSError as error:
        reason = error.strerror or str(error)
        fix = (
            "free some space or give another --output"
            if error.errno == errno.ENOSPC
            else "give an --output folder you can write to"
        )
        raise OutputWriteError(f"cannot write {path} ({reason}): {fix}") from error


def _write_crops(
    image: np.ndarray,
    saliency: np.ndarray,
    ratios: list[str],
    prefix: str,
    suffix: str,
) -> list[str]:
    """Writes `<prefix>_crop_<a>x<b><suffix>` per ratio; returns the CSV cells.

    `image` (RGB) and `saliency` are both in the orientation a person sees.
    """
    try:
        boxes = crop.best_crops(saliency, ratios)
    except ValueError:  # a window rounds to 0 px in this tiny image: one by one
        boxes = {}
        for ratio in ratios:
            try:
                boxes.update(crop.best_crops(saliency, [ratio]))
            except ValueError:
                pass
    cells: list[str] = []
    for ratio in ratios:
        box = boxes.get(ratio)
        if box is None:
            cells += [""] * len(BOX_FIELDS)
            continue
        suffix = suffix.lower() if suffix.lower() in IMAGE_EXTENSIONS else ".png"
        path = f"{prefix}_crop_{crop_tag(ratio)}{suffix}"
        bgr = cv2.cvtColor(
            np.ascontiguousarray(crop.crop_image(image, box)), cv2.COLOR_RGB2BGR
        )
        params = (
            [cv2.IMWRITE_JPEG_QUALITY, CROP_JPEG_QUALITY]
            if suffix in image_io.FORMATS["JPEG"]
            else []
        )
        write_image(path, bgr, params)
        cells += [str(v) for v in box]
    return cells


def check_output_folder(input_path: pathlib.Path, out: pathlib.Path) -> None:
    """Checks that `out` can take the outputs; creates it.

    Raises:
        ValueError: `out` is an existing file, is the input folder (or the
            input file), or cannot be created or written (naming the folder
            and the reason).
    """
    if out.exists() and not out.is_dir():
        raise ValueError(
            f"--output {out} is an existing file; --output names a folder (created "
            "if missing): give another path."
        )
    if out.resolve() == input_path.resolve():
        kind = "folder" if input_path.is_dir() else "file"
        raise ValueError(
            f"--output {out} is the --input {kind}; the outputs need their own "
            "folder (e.g. a new folder beside it, or a subfolder, which is not "
            "read back)."
        )
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".aesthal_write_test_{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        reason = error.strerror or str(error)
        raise ValueError(
            f"--output {out}: cannot write there ({reason}); give a folder you "
            "can write to."
        ) from error


def main(argv: list[str] | None = None) -> int:
    """The command line; returns the exit status.

    0: at least one image's outputs were written; 1: image files were found
    but none could be read (each is reported); 2: a usage or environment
    error, as one line on stderr: a bad or missing flag (argparse), no such
    `--input` or no image files in it, `--output` that is the input, an
    existing file or not writable, a model that cannot be loaded (missing,
    truncated, corrupt, foreign: `aesthal.inference.ModelLoadError`), a single
    `--input` image over `--max_pixels`, `--crops` for a model without
    saliency, or an output write failing during the run (naming the file).
    """
    parser = argparse.ArgumentParser(
        prog="python -m aesthal.predict",
        description=__doc__.split("\n\n")[0],
        epilog="Outputs: <name>_saliency.png (16-bit), <name>_overlay.jpg, "
        "<name>_crop_<a>x<b>.<ext> (with --crops), predictions.csv, summary.json.",
    )
    parser.add_argument(
        "--model",
        required=True,
        help=".keras file or SavedModel folder; several, comma-separated, average "
        "their maps (an ensemble, e.g. one recipe's seeds)",
    )
    parser.add_argument(
        "--mirror",
        action="store_true",
        help="also average each model's map of the mirror image (slower, better)",
    )
    parser.add_argument(
        "--scales",
        default="1",
        help="factors of each model's input size to also run it at, "
        "comma-separated, their maps averaged (e.g. 1,1.25,1.5; slower); other "
        "than 1 needs .keras files",
    )
    parser.add_argument(
        "--input", required=True, help="an image file or a folder (recursive)"
    )
    parser.add_argument("--output", required=True, help="output folder (created)")
    parser.add_argument(
        "--batch_size", type=int, default=8, help="images per model call"
    )
    parser.add_argument("--no_progress", action="store_true", help="no progress bar")
    parser.add_argument(
        "--max_pixels",
        type=int,
        default=image_io.DEFAULT_MAX_PIXELS,
        help="skip images of more pixels (height x width, read from the file's "
        "header before decoding); default %(default)s (50 megapixels, about 2 GB "
        "of memory per image)",
    )
    parser.add_argument(
        "--crops",
        default="",
        help="aspect ratios width:height, comma-separated (e.g. 1:1,16:9,9:16,4:5): "
        "write each image's saliency-aware crop at each ratio and its box in the CSV",
    )
    args = parser.parse_args(argv)
    crops = [r.strip() for r in args.crops.split(",") if r.strip()]
    for ratio in crops:
        try:
            crop.parse_ratio(ratio)
        except ValueError as error:
            parser.error(f"--crops: {error}")
    if args.batch_size < 1:
        parser.error(f"--batch_size must be >= 1, got {args.batch_size}")
    if args.max_pixels < 1:
        parser.error(f"--max_pixels must be >= 1, got {args.max_pixels}")
    from aesthal.inference import parse_scales

    try:
        scales = parse_scales(args.scales)
    except ValueError as error:
        parser.error(f"--scales: {error}")
    return run_prediction(args, crops, scales)


def run_prediction(args, crops: list[str], scales, model=None) -> int:
    """`predict_folder` on checked flags, its outcome printed as `main` says
    it (also `aesthal predict`'s); returns the exit status (see `main`).

    `args` has `main`'s flags as attributes (`model`, `input`, `output`,
    `batch_size`, `no_progress`, `mirror`, `max_pixels`); `model`, a
    `Predictor`, replaces the one `args.model` names (and notes name).
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # Errors only: a broken file is reported below, once.
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    try:
        with warnings.catch_warnings():
            # Predictor's warning about untrained outputs: said once, below.
            warnings.filterwarnings("ignore", message=".*outputs are left out")
            summary = predict_folder(
                args.model if model is None else model,
                args.input,
                args.output,
                batch_size=args.batch_size,
                progress=not args.no_progress,
                crops=crops,
                mirror=args.mirror,
                scales=scales,
                max_pixels=args.max_pixels,
            )
    except (OSError, ValueError) as error:
        # A usage or environment error (checked before any prediction), or an
        # output file failing later (a full disk): one line, status 2.
        print(f"error: {' '.join(str(error).split())}", file=sys.stderr)
        return 2
    omitted = [t for t in TASKS if t not in summary.tasks]
    if omitted:
        left_out = {
            "saliency": "saliency maps and overlays",
            "aesthetics": "aesthetics columns p1..p10 and mean_score",
        }
        print(
            f"note: {args.model} was trained on {' and '.join(summary.tasks)} only; "
            f"its untrained {' and '.join(omitted)} outputs are left out "
            f"({'; '.join(left_out[t] for t in omitted)}).",
            file=sys.stderr,
        )
    for name, reason in summary.skipped.items():
        print(f"skipped {name}: {reason}", file=sys.stderr)
    too_large = (
        f", {summary.too_large} of them over --max_pixels" if summary.too_large else ""
    )
    print(
        f"{summary.found} image file(s): wrote {summary.written} prediction(s) to "
        f"{args.output}, skipped {len(summary.skipped)} unreadable{too_large} "
        f"({summary.seconds:.1f} s)"
    )
    return 0 if summary.written else 1


if __name__ == "__main__":
    sys.exit(main())
