"""`aesthal.drawing`: heat maps, overlays and the 16-bit saliency PNG."""

import numpy as np

from aesthal import drawing


def test_heat_map_scales_each_map_to_its_maximum():
    maps = np.zeros((2, 2, 3, 1), np.float32)
    maps[0, 0, 0], maps[0, 1, 2] = 2.0, 1.0
    colours = drawing.heat_map(maps)
    assert colours.shape == (2, 2, 3, 3) and colours.dtype == np.uint8
    # JET: the maximum is dark red, zero is dark blue (RGB).
    assert colours[0, 0, 0].tolist() == [128, 0, 0]
    assert colours[0, 0, 1].tolist() == [0, 0, 128]
    np.testing.assert_array_equal(
        colours[1], colours[0, 0, 1][None, None].repeat(2, 0).repeat(3, 1)
    )


def test_saliency_png_scales_the_maximum_to_65535():
    saliency = np.array([[0.0, 1.0], [2.0, 4.0]], np.float32)
    np.testing.assert_array_equal(
        drawing.saliency_png(saliency), [[0, 16384], [32768, 65535]]
    )
    assert drawing.saliency_png(np.zeros((2, 3))).dtype == np.uint16
    assert not drawing.saliency_png(np.zeros((2, 3))).any()


def test_overlay_blends_half_heat_map_half_image_in_bgr():
    image = np.zeros((2, 3, 3), np.uint8)
    image[..., 0] = 200  # red, in RGB
    saliency = np.ones((2, 3), np.float32)  # its own maximum everywhere: dark red
    blended = drawing.overlay(image, saliency)
    # BGR: red 0.5 * 200 + 0.5 * 128 = 164; green and blue 0.
    np.testing.assert_array_equal(blended, np.full((2, 3, 3), [0, 0, 164]))
