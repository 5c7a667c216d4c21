"""Writes `dummy_data/`: a tiny SALICON 2017 release in the real file formats.

    python -m aesthal.datasets.salicon.make_dummy_data

Images are 64x48 (W x H, a 10x smaller SALICON); `.mat` files hold `image`,
`resolution` ([48 64]) and `gaze`, a 1xS struct array of {location,
timestamp, fixations}, `fixations` an Mx2 double of 1-based (x, y).

    train: COCO_train2014_000000000001  kept; first fixation MATLAB (1, 1)
           COCO_train2014_000000000002  16-bit map PNG -> kept (to 8-bit)
           COCO_train2014_000000000003  map all zeros          -> skip zero_map
           COCO_train2014_000000000004  .mat without `gaze`    -> skip bad_mat_entry
           COCO_train2014_000000000005  map 40x40 (aspect)     -> skip map_size_mismatch
           COCO_train2014_000000000006  map 32x24 (half size)  -> kept, map resized
    val:   COCO_val2014_000000000001    kept
           COCO_val2014_000000000002    no map file            -> skip missing_file
    test:  COCO_test2014_000000000001/2 kept, unlabelled
"""

import pathlib

import cv2
import numpy as np
import scipy.io

HEIGHT, WIDTH = 48, 64
OUT = pathlib.Path(__file__).resolve().parent / "dummy_data"


def _gaze(rng: np.random.Generator, first: tuple[float, float] | None = None):
    gaze = np.empty((1, 3), dtype=object)
    for j in range(3):
        xy = np.column_stack([rng.uniform(1, WIDTH, 4), rng.uniform(1, HEIGHT, 4)])
        if first is not None and j == 0:
            xy[0] = first
        gaze[0, j] = {
            "location": np.round(xy).astype(np.uint16),
            "timestamp": np.arange(4, dtype=np.uint16).reshape(-1, 1) * 10,
            "fixations": xy,
        }
    return gaze


def _map(rng: np.random.Generator, shape=(HEIGHT, WIDTH)) -> np.ndarray:
    blob = np.zeros(shape, np.float32)
    blob[shape[0] // 2, shape[1] // 3] = 1.0
    blob = cv2.GaussianBlur(blob, (0, 0), 4.0)
    return np.round(255 * blob / blob.max()).astype(np.uint8)


def main() -> None:
    rng = np.random.default_rng(1)
    for folder in ["train", "val", "test"]:
        for sub in ["images", "maps", "fixations"]:
            if sub == "images" or folder != "test":
                (OUT / sub / folder).mkdir(parents=True, exist_ok=True)

    def write(folder, stem, *, image=True, smap="ok", mat="ok", first=None):
        prefix = {"train": "COCO_train2014_", "val": "COCO_val2014_"}.get(
            folder, "COCO_test2014_"
        )
        name = prefix + stem
        if image is True:
            rgb = rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
            cv2.imwrite(str(OUT / "images" / folder / f"{name}.jpg"), rgb)
        elif image is not None:
            (OUT / "images" / folder / f"{name}.jpg").write_bytes(image)
        if folder == "test":
            return
        if smap is not None:
            if smap == "ok":
                array = _map(rng)
            elif smap == "zero":
                array = np.zeros((HEIGHT, WIDTH), np.uint8)
            elif smap == "16bit":
                array = _map(rng).astype(np.uint16) * 257
            else:
                array = _map(rng, smap)
            cv2.imwrite(str(OUT / "maps" / folder / f"{name}.png"), array)
        content = {"image": name, "resolution": np.array([[HEIGHT, WIDTH]], np.uint16)}
        if mat == "ok":
            content["gaze"] = _gaze(rng, first)
        scipy.io.savemat(str(OUT / "fixations" / folder / f"{name}.mat"), content)

    write("train", "000000000001", first=(1.0, 1.0))
    write("train", "000000000002", smap="16bit")
    write("train", "000000000003", smap="zero")
    write("train", "000000000004", mat="no_gaze")
    write("train", "000000000005", smap=(40, 40))
    write("train", "000000000006", smap=(24, 32))
    write("val", "000000000001")
    write("val", "000000000002", smap=None)
    write("test", "000000000001")
    write("test", "000000000002")


if __name__ == "__main__":
    main()
