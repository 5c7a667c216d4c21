"""Writes `dummy_data/`: a tiny AVA in the real formats.

    python -m aesthal.datasets.ava.make_dummy_data

`AVA.txt` (15 integers per line), `images/<id>.jpg` (48x64 JPEGs) and the
official-format test list `aesthetics_image_lists/generic_test.jpgl`.

    id 10, 12   train, kept
    id 11, 17   test (listed), kept; 17 is a grayscale JPEG
    line 4      only 12 fields               -> skip malformed_line
    id 14       no image file                -> skip missing_file
    id 15       zero votes                   -> skip zero_votes
    id 16       truncated JPEG               -> skip corrupt_image
    id 10 again duplicate line               -> skip duplicate_id
"""

import pathlib

import cv2
import numpy as np

OUT = pathlib.Path(__file__).resolve().parent / "dummy_data"
VOTES = {
    10: [0, 1, 5, 17, 38, 36, 15, 6, 5, 1],
    11: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
    12: [10, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    14: [0, 0, 0, 0, 50, 50, 0, 0, 0, 0],
    15: [0] * 10,
    16: [1] * 10,
    17: [0, 0, 0, 0, 0, 0, 0, 0, 0, 7],
}


def main() -> None:
    rng = np.random.default_rng(4)
    (OUT / "images").mkdir(parents=True, exist_ok=True)
    (OUT / "aesthetics_image_lists").mkdir(parents=True, exist_ok=True)
    lines = []
    for index, (image_id, votes) in enumerate(VOTES.items(), start=1):
        lines.append(" ".join(map(str, [index, image_id, *votes, 15, 21, 1396])))
    lines.insert(3, "4 13 0 1 2 3 4 5 6 7 8 9")  # malformed: 12 fields
    lines.append(" ".join(map(str, [9, 10, *VOTES[10], 0, 0, 1396])))  # duplicate
    (OUT / "AVA.txt").write_text("\n".join(lines) + "\n")
    for image_id in [10, 11, 12, 13, 15, 16]:
        image = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
        cv2.imwrite(str(OUT / "images" / f"{image_id}.jpg"), image)
    ok, jpeg = cv2.imencode(".jpg", rng.integers(0, 256, (48, 64, 3), dtype=np.uint8))
    (OUT / "images" / "16.jpg").write_bytes(jpeg.tobytes()[:300])
    gray = rng.integers(0, 256, (48, 64), dtype=np.uint8)
    cv2.imwrite(str(OUT / "images" / "17.jpg"), gray)
    (OUT / "aesthetics_image_lists" / "generic_test.jpgl").write_text("11\n17\n")


if __name__ == "__main__":
    main()
