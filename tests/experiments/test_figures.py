"""experiments/figures.py: the crops figure (the grid is tested in test_predict.py)."""

import pathlib

import cv2
import numpy as np
from conftest import load_script

from aesthal import crop

FIGURES = pathlib.Path(__file__).resolve().parents[2] / "experiments" / "figures.py"


def _figures_module():
    return load_script(FIGURES, "figures_script")


def test_render_crops_draws_every_crop_at_the_photo_scale(tmp_path):
    figures = _figures_module()
    # A 60x80 grey photo, pure blue from column 36 on; the map peaks there.
    image = np.full((60, 80, 3), 128, np.uint8)
    image[:, 36:] = (0, 0, 255)
    saliency = np.zeros((60, 80))
    saliency[30, 70] = 1.0
    boxes = crop.best_crops(saliency, ["1:1", "16:9", "9:16", "4:5"])
    # 34 wide (33.75): the window holding column 70 nearest the centre.
    assert boxes["9:16"] == (0, 37, 60, 34)
    path = tmp_path / "crops.png"
    size = figures.render_crops(image, saliency, boxes, path, height=120)
    # 2 px per image pixel: the crops' widths 60 + 80 + 34 + 48 = 222 -> 444
    # px, plus 3 gaps of 12 and a 12 px margin on each side.
    assert size == (444 + 36 + 24, 22 + 120 + 34 + 120 + 12)
    drawn = cv2.imread(str(path))[..., ::-1]
    assert drawn.shape == (size[1], size[0], 3)
    # The 9:16 crop (third in the bottom row) is all blue: columns 37..70 of
    # the photo, not the centre crop (23..56, partly grey).
    x0 = 12 + (60 + 80) * 2 + 2 * 12
    y0 = 22 + 120 + 34
    cell = drawn[y0 + 4 : y0 + 116, x0 + 4 : x0 + 64].astype(int)
    assert np.all(np.abs(cell - [0, 0, 255]).max(axis=-1) < 40)
