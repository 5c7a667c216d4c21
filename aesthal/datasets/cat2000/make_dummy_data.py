"""Writes `dummy_data/`: a tiny CAT2000 `trainSet` in the real file formats.

    python -m aesthal.datasets.cat2000.make_dummy_data

Two categories (`Action`, `Indoor`) of ten 64x36 (W x H, 16:9 like
1920x1080) images; per category round(10 * 0.1) = 1 goes to test.
`FIXATIONLOCS/<cat>/<name>.mat` holds `fixLocs`, a double [36 64] 0/1 map.

    Action/001.jpg  fixLocs ones at (0, 0) and (35, 63)   -> kept
    Action/002.jpg  RGBA PNG bytes under .jpg             -> kept, alpha dropped
    Action/003.jpg  fixLocs of another size               -> skip map_size_mismatch
    Action/004.jpg  .mat without fixLocs                  -> skip bad_mat_entry
    Indoor/005.jpg  FIXATIONMAPS all zero                 -> skip zero_map
    others          kept
"""

import pathlib

import cv2
import numpy as np
import scipy.io

HEIGHT, WIDTH = 36, 64
OUT = pathlib.Path(__file__).resolve().parent / "dummy_data" / "trainSet"


def main() -> None:
    rng = np.random.default_rng(3)
    for category in ["Action", "Indoor"]:
        for sub in ["Stimuli", "FIXATIONMAPS", "FIXATIONLOCS"]:
            (OUT / sub / category).mkdir(parents=True, exist_ok=True)
        for i in range(1, 11):
            name = f"{i:03d}"
            if category == "Action" and i == 2:
                rgba = rng.integers(0, 256, (HEIGHT, WIDTH, 4), dtype=np.uint8)
                ok, png = cv2.imencode(".png", rgba)
                (OUT / "Stimuli" / category / f"{name}.jpg").write_bytes(png.tobytes())
            else:
                image = rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
                cv2.imwrite(str(OUT / "Stimuli" / category / f"{name}.jpg"), image)
            locs = np.zeros((HEIGHT, WIDTH), np.float64)
            if category == "Action" and i == 1:
                locs[0, 0] = locs[HEIGHT - 1, WIDTH - 1] = 1
            else:
                locs[rng.integers(HEIGHT), rng.integers(WIDTH)] = 1
            blurred = cv2.GaussianBlur(locs.astype(np.float32), (0, 0), 3.0)
            fix_map = np.round(255 * blurred / blurred.max()).astype(np.uint8)
            if category == "Indoor" and i == 5:
                fix_map[:] = 0
            cv2.imwrite(str(OUT / "FIXATIONMAPS" / category / f"{name}.jpg"), fix_map)
            content = {"fixLocs": locs}
            if category == "Action" and i == 3:
                content = {"fixLocs": np.zeros((10, 10))}
            if category == "Action" and i == 4:
                content = {"fixations": locs}
            scipy.io.savemat(
                str(OUT / "FIXATIONLOCS" / category / f"{name}.mat"), content
            )


if __name__ == "__main__":
    main()
