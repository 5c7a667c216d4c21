"""Writes `dummy_data/`: a tiny MIT1003 in the real file formats.

    python -m aesthal.datasets.mit1003.make_dummy_data

Eleven 64x48 (W x H) images `ALLSTIMULI/<stem>.jpeg` with JPEG maps
`ALLFIXATIONMAPS/<stem>_fixMap.jpg` and `_fixPts.jpg` (white fixated pixels
on black, JPEG like the release). With 11 images, round(11 * 100 / 1003) = 1
goes to test.

    i1 .. i8  kept (i1: fixated pixels (0, 0), (10, 20), (47, 63))
    i9        grayscale stimulus              -> kept, gray -> RGB
    i10       `_fixPts.jpg` missing           -> skip missing_file
    i11       corrupt (not an image)          -> skip corrupt_image
"""

import pathlib

import cv2
import numpy as np

HEIGHT, WIDTH = 48, 64
OUT = pathlib.Path(__file__).resolve().parent / "dummy_data"


def main() -> None:
    rng = np.random.default_rng(2)
    stimuli = OUT / "ALLSTIMULI"
    maps = OUT / "ALLFIXATIONMAPS"
    stimuli.mkdir(parents=True, exist_ok=True)
    maps.mkdir(parents=True, exist_ok=True)
    for i in range(1, 12):
        stem = f"i{i}"
        if i == 9:
            image = rng.integers(0, 256, (HEIGHT, WIDTH), dtype=np.uint8)
        else:
            image = rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
        if i == 11:
            (stimuli / f"{stem}.jpeg").write_bytes(b"not a JPEG at all")
        else:
            cv2.imwrite(str(stimuli / f"{stem}.jpeg"), image)
        points = np.zeros((HEIGHT, WIDTH), np.uint8)
        if i == 1:
            fixated = [(0, 0), (10, 20), (47, 63)]
        else:
            fixated = [(int(rng.integers(HEIGHT)), int(rng.integers(WIDTH)))]
        for row, col in fixated:
            points[row, col] = 255
        blurred = cv2.GaussianBlur(points.astype(np.float32), (0, 0), 3.0)
        fix_map = np.round(255 * blurred / blurred.max()).astype(np.uint8)
        cv2.imwrite(str(maps / f"{stem}_fixMap.jpg"), fix_map)
        if i != 10:
            cv2.imwrite(str(maps / f"{stem}_fixPts.jpg"), points)


if __name__ == "__main__":
    main()
