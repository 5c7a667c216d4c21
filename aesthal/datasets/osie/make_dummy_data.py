"""Writes `dummy_data/`: a tiny OSIE in the real file formats.

    python -m aesthal.datasets.osie.make_dummy_data

Layout and `.mat` structure as the real release (a 1-column cell `fixations`
of structs {img, subjects}; `subjects` a 1-column cell of structs {fix_x,
fix_y, fix_duration}, row vectors, 1-based). Images are 64x48 (W x H).

    train: 1001.jpg  RGB                         -> kept
           1002.jpg  grayscale JPEG              -> kept (gray -> RGB)
           1003.jpg  truncated JPEG              -> skip corrupt_image
           1004.jpg  listed in .mat, no file     -> skip missing_file
           1005.jpg  subject without fix_y       -> skip bad_mat_entry
    test:  1601.jpg  RGB, first fixation at MATLAB (x=1, y=1) -> kept, (0, 0)
           1602.jpg  RGB, no observer fixated    -> skip zero_map
           1603.jpg  image without a .mat entry  -> skip no_fixations
"""

import pathlib

import cv2
import numpy as np
import scipy.io

HEIGHT, WIDTH = 48, 64
OUT = pathlib.Path(__file__).resolve().parent / "dummy_data"


def _image(rng: np.random.Generator) -> np.ndarray:
    return rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)


def _subject(x, y, with_y: bool = True) -> dict:
    subject = {"fix_x": np.asarray(x, np.float64).reshape(1, -1)}
    if with_y:
        subject["fix_y"] = np.asarray(y, np.float64).reshape(1, -1)
    subject["fix_duration"] = np.full((1, len(x)), 250, np.uint16)
    return subject


def _cell(items: list) -> np.ndarray:
    cell = np.empty((len(items), 1), dtype=object)
    for i, item in enumerate(items):
        cell[i, 0] = item
    return cell


def main() -> None:
    rng = np.random.default_rng(0)
    stimuli = OUT / "data" / "stimuli"
    eye = OUT / "data" / "eye"
    stimuli.mkdir(parents=True, exist_ok=True)
    eye.mkdir(parents=True, exist_ok=True)

    for name in ["1001.jpg", "1005.jpg", "1601.jpg", "1602.jpg", "1603.jpg"]:
        cv2.imwrite(str(stimuli / name), _image(rng), [cv2.IMWRITE_JPEG_QUALITY, 90])
    gray = rng.integers(0, 256, (HEIGHT, WIDTH), dtype=np.uint8)
    cv2.imwrite(str(stimuli / "1002.jpg"), gray)
    ok, jpeg = cv2.imencode(".jpg", _image(rng))
    (stimuli / "1003.jpg").write_bytes(jpeg.tobytes()[: len(jpeg) // 2])

    def observers(n_obs: int) -> list:
        return [
            _subject(rng.uniform(1, WIDTH, 3), rng.uniform(1, HEIGHT, 3))
            for _ in range(n_obs)
        ]

    entries = [
        {"img": "1001.jpg", "subjects": _cell(observers(3))},
        {"img": "1002.jpg", "subjects": _cell(observers(2))},
        {"img": "1003.jpg", "subjects": _cell(observers(2))},
        {"img": "1004.jpg", "subjects": _cell(observers(2))},
        {
            "img": "1005.jpg",
            "subjects": _cell([_subject([5.0], [5.0], with_y=False)]),
        },
        {
            "img": "1601.jpg",
            "subjects": _cell(
                [_subject([1.0, 64.0], [1.0, 48.0]), _subject([32.5], [20.0])]
            ),
        },
        {"img": "1602.jpg", "subjects": _cell([_subject([], []), _subject([], [])])},
    ]
    scipy.io.savemat(str(eye / "fixations.mat"), {"fixations": _cell(entries)})


if __name__ == "__main__":
    main()
