"""Pure tensor functions from a TFDS example to model-ready tensors.

Every function here is a pure function of its tensor arguments: it gives the
same result eagerly and inside `tf.data.Dataset.map` (tested).

Resize policy: **stretch**. The image and its map are resized independently
along each axis to the model size, ignoring the aspect ratio, exactly as the
exported model stretches its inputs. Coordinates follow the pixel-centre
convention of `tf.image.resize` (`half_pixel_centers`): a point at `(r, c)` in
an `h x w` image moves to `((r + 0.5) H / h - 0.5, (c + 0.5) W / w - 0.5)`.
"""

from __future__ import annotations

import tensorflow as tf

from aesthal.config import NUM_SCORES


def standardize_example(example: dict, source_name: str = "source") -> dict:
    """Fills the features a source lacks and validates the targets cheaply.

    Args:
        example: a TFDS-style example dict with `image` (uint8 `[h, w, 3]`, or
            `[h, w, 1]` grayscale, converted to RGB) and any of
            `fixation_map` (`[h, w, 1]`, any non-negative scale),
            `fixations` (float32 `[N, 2]`), `aesthetics_votes` (`[10]`),
            `has_saliency`, `has_aesthetics` (bool), `image/filename`.
        source_name: named in error messages.

    Returns:
        A dict with exactly: `image` uint8 `[h, w, 3]`, `fixation_map` float32
        `[h, w, 1]`, `fixations` float32 `[N, 2]`, `aesthetics_votes` float32
        `[10]`, `has_saliency` and `has_aesthetics` bool scalars, `filename`
        string scalar. Missing labels are zeros with a False flag.

    Raises:
        ValueError: an image that is neither 1 nor 3 channels (static shape).
        tf.errors.InvalidArgumentError: when run, a target that is NaN/Inf or
            negative, a labelled map or vote vector that is all zeros, or a map
            whose size differs from its image's.
    """
    image = example["image"]
    channels = image.shape[-1]
    if channels == 1:
        image = tf.image.grayscale_to_rgb(image)
    elif channels is not None and channels != 3:
        raise ValueError(
            f"{source_name}: image has {channels} channels; expected RGB (3) or "
            "grayscale (1). Convert RGBA/other images in the builder."
        )
    if image.dtype != tf.uint8:
        raise ValueError(
            f"{source_name}: image dtype is {image.dtype.name}; expected uint8 "
            "(16-bit images are converted by the builders)."
        )
    size = tf.shape(image)[:2]
    filename = example.get("image/filename", tf.constant(""))

    has_map = "fixation_map" in example
    if has_map:
        fixation_map = tf.cast(example["fixation_map"], tf.float32)
        if fixation_map.shape.rank == 2:
            fixation_map = fixation_map[..., None]
    else:
        fixation_map = tf.zeros(tf.concat([size, [1]], 0), tf.float32)
    if "fixations" in example:
        fixations = tf.reshape(tf.cast(example["fixations"], tf.float32), [-1, 2])
    else:
        fixations = tf.zeros([0, 2], tf.float32)
    has_votes = "aesthetics_votes" in example
    if has_votes:
        votes = tf.reshape(
            tf.cast(example["aesthetics_votes"], tf.float32), [NUM_SCORES]
        )
    else:
        votes = tf.zeros([NUM_SCORES], tf.float32)
    has_saliency = tf.cast(example.get("has_saliency", has_map), tf.bool)
    has_aesthetics = tf.cast(example.get("has_aesthetics", has_votes), tf.bool)

    checks = []
    if has_map:
        where = f"{source_name}: fixation_map"
        checks += [
            tf.debugging.assert_all_finite(fixation_map, f"{where} has NaN or Inf"),
            tf.debugging.assert_non_negative(
                fixation_map, message=f"{where} has negative values"
            ),
            tf.debugging.assert_equal(
                tf.shape(fixation_map)[:2],
                size,
                message=f"{where} size differs from its image's",
            ),
            tf.debugging.Assert(
                tf.logical_or(
                    tf.logical_not(has_saliency), tf.reduce_sum(fixation_map) > 0
                ),
                [f"{where} is all zeros but has_saliency is True; file:", filename],
            ),
        ]
    if "fixations" in example:
        checks.append(
            tf.debugging.assert_all_finite(
                fixations, f"{source_name}: fixations have NaN or Inf"
            )
        )
    if has_votes:
        where = f"{source_name}: aesthetics_votes"
        checks += [
            tf.debugging.assert_all_finite(votes, f"{where} have NaN or Inf"),
            tf.debugging.assert_non_negative(votes, message=f"{where} are negative"),
            tf.debugging.Assert(
                tf.logical_or(tf.logical_not(has_aesthetics), tf.reduce_sum(votes) > 0),
                [f"{where} are all zeros but has_aesthetics is True; file:", filename],
            ),
        ]
    with tf.control_dependencies(checks):
        fixation_map = tf.identity(fixation_map)
        votes = tf.identity(votes)
    return {
        "image": image,
        "fixation_map": fixation_map,
        "fixations": fixations,
        "aesthetics_votes": votes,
        "has_saliency": has_saliency,
        "has_aesthetics": has_aesthetics,
        "filename": tf.cast(filename, tf.string),
    }


def stretch_images(images: tf.Tensor, size) -> tf.Tensor:
    """Stretches images to `size`, the resize policy above (training and export).

    Args:
        images: uint8 or float `[h, w, 3]` or `[B, h, w, 3]`, values in 0..255.
        size: the target `(H, W)` (ints or an int tensor).

    Returns:
        float32 `[H, W, 3]` or `[B, H, W, 3]`: bilinear and antialiased,
        clipped to 0..255.
    """
    resized = tf.image.resize(
        tf.cast(images, tf.float32), size, method="bilinear", antialias=True
    )
    return tf.clip_by_value(resized, 0.0, 255.0)


def _normalise_mass(m: tf.Tensor) -> tf.Tensor:
    total = tf.reduce_sum(m)
    return tf.math.divide_no_nan(m, total)


def resize_example(features: dict, image_size: tuple[int, int]) -> dict:
    """Stretches image, map and points to `image_size`; builds targets and masks.

    Args:
        features: the output of `standardize_example`.
        image_size: `(H, W)` of the model input.

    Returns:
        A dict: `image` float32 `[H, W, 3]` in 0..255; `saliency` float32
        `[H, W, 1]`, non-negative, sums to 1 when labelled, else zeros;
        `aesthetics` float32 `[10]` votes (zeros when unlabelled);
        `saliency_mask`, `aesthetics_mask` float32 scalars (0 or 1);
        `fixations` float32 `[N, 2]` in resized coordinates.
    """
    height, width = int(image_size[0]), int(image_size[1])
    image = features["image"]
    src = tf.cast(tf.shape(image)[:2], tf.float32)
    # A resize to the same size is the identity (bit for bit): skip it when
    # the size is known at trace time, e.g. generated data at the model size.
    same_size = tuple(image.shape[:2]) == (height, width)
    resized = tf.cast(image, tf.float32)
    if not same_size:
        resized = stretch_images(resized, (height, width))
    # Density at the source resolution, resampled, then its mass renormalised.
    density = _normalise_mass(features["fixation_map"])
    if not same_size:
        density = tf.image.resize(
            density, (height, width), method="bilinear", antialias=True
        )
    saliency_mask = tf.cast(features["has_saliency"], tf.float32)
    density = _normalise_mass(tf.nn.relu(density)) * saliency_mask
    aesthetics_mask = tf.cast(features["has_aesthetics"], tf.float32)
    scale = tf.constant([height, width], tf.float32) / src
    points = (features["fixations"] + 0.5) * scale - 0.5
    return {
        "image": tf.ensure_shape(resized, (height, width, 3)),
        "saliency": tf.ensure_shape(density, (height, width, 1)),
        "aesthetics": features["aesthetics_votes"] * aesthetics_mask,
        "saliency_mask": saliency_mask,
        "aesthetics_mask": aesthetics_mask,
        "fixations": points,
    }


def flip_example(features: dict, flip: tf.Tensor) -> dict:
    """Mirrors image, saliency map and fixation points left-right when `flip`.

    Args:
        features: the output of `resize_example` (image `[H, W, 3]`, saliency
            `[H, W, 1]`, fixations `[N, 2]`).
        flip: bool scalar tensor.

    Returns:
        The same dict, mirrored when `flip` is True; a point at column `c`
        moves to `W - 1 - c`.
    """
    out = dict(features)
    width = tf.cast(tf.shape(features["image"])[1], tf.float32)

    def mirror_points(p):
        return tf.stack([p[:, 0], width - 1.0 - p[:, 1]], axis=-1)

    flip = tf.convert_to_tensor(flip, tf.bool)
    out["image"] = tf.cond(
        flip, lambda: tf.reverse(features["image"], [1]), lambda: features["image"]
    )
    out["saliency"] = tf.cond(
        flip,
        lambda: tf.reverse(features["saliency"], [1]),
        lambda: features["saliency"],
    )
    out["fixations"] = tf.cond(
        flip,
        lambda: mirror_points(features["fixations"]),
        lambda: features["fixations"],
    )
    return out


def to_model_inputs(features: dict) -> tuple[tf.Tensor, dict, dict]:
    """Splits a (batched) preprocessed dict into `(images, targets, sample_weights)`.

    Args:
        features: `resize_example`/`flip_example` output, batched or not.

    Returns:
        `(image, {"saliency", "aesthetics"}, {"saliency", "aesthetics"})` as in
        docs/design.md.
    """
    return (
        features["image"],
        {"saliency": features["saliency"], "aesthetics": features["aesthetics"]},
        {
            "saliency": features["saliency_mask"],
            "aesthetics": features["aesthetics_mask"],
        },
    )
