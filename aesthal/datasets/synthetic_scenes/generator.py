"""Generated scenes whose saliency and aesthetics share known causes.

This module is the ground truth of the study. Everything is a pure function
of `(SceneConfig, seed)`; the TFDS builder only calls `generate_scene` with
`example_seed(config.seed, split, index)`.

Notation: the image is `H x W` pixels; pixel `(i, j)` (row, column, 0-based)
has its centre at coordinate `(i, j)` and covers `[i-0.5, i+0.5] x
[j-0.5, j+0.5]`. `s = min(H, W)`. `U(a, b)` is uniform, `N(m, v)` normal,
`HSV(h, s, v)` a colour with every component in [0, 1].

1. Background
   Hue `h_bg ~ U(0, 1)`, saturation `U(0.15, 0.6)`, value `U(0.35, 0.75)`.
   Texture: i.i.d. `N(0, 1)` noise on a `ceil(H/8) x ceil(W/8)` grid,
   bicubically resized to `H x W`, scaled to unit standard deviation and
   multiplied by the amplitude `tau ~ U(0, TEXTURE_MAX)` (grey levels,
   `TEXTURE_MAX = 40`), added to all three channels. `t = tau / TEXTURE_MAX`
   in [0, 1] is the texture strength.

2. Objects
   `K ~ U{1..5}` objects, painted in order (later ones occlude earlier ones).
   Object `k`: type `T_k` in {disk, square, triangle, face} with
   probabilities (0.3, 0.3, 0.2, 0.2); centre `(U(0.1, 0.9) (H-1),
   U(0.1, 0.9) (W-1))`; radius `r_k = U(0.06, 0.16) s`. Colour `HSV(U(0, 1),
   U(0.2, 1), U(0.2, 1))`; a face is a skin-toned ellipse `HSV(0.07,
   U(0.3, 0.6), U(0.55, 0.95))` (axes `0.8 r`, `r`) with two dark eyes at
   `(-0.2 r, +-0.35 r)` from its centre (radius `0.15 r`) and a mouth line at
   `+0.4 r`. `M_k` is the visible mask of object `k` (its mask minus the
   masks of later objects), `a_k = |M_k| / (H W)` its visible area fraction.

3. Exposure and blur (global)
   With probability 0.5 an exposure shift `e ~ U(-1.2, 1.2)` stops (else
   `e = 0`): the image is multiplied by `2^e` and clipped to [0, 255]. With
   probability 0.4 a Gaussian blur of `sigma_b = beta W` pixels, `beta ~
   U(0.003, BLUR_MAX)` with `BLUR_MAX = 0.025` (else `beta = 0`). Then the
   image is rounded to uint8. `b = beta / BLUR_MAX` in [0, 1].

4. Conspicuity (measured on the final image)
   Local contrast `c_k = || mean RGB over M_k - mean RGB over the ring ||_2 /
   (255 sqrt(3))` in [0, 1], the ring being `M_k` dilated by `ceil(0.5 r_k)`
   pixels minus `M_k`. Conspicuity

       w_k = PI[T_k] * (EPS_C + c_k) * sqrt(a_k / A_REF)

   with the semantic prior `PI = {disk: 1, square: 1, triangle: 1.3,
   face: 4}`, `EPS_C = 0.05`, `A_REF = 0.02`; an object with no visible pixel
   has `w_k = 0`. `W = sum_k w_k`. The subject is `k* = argmax_k w_k`.

5. True fixation density (float32 `[H, W]`, sums to 1)

       p = LAMBDA_U * u + m_c * g_centre + m_obj * sum_k (w_k / W) g_k

   `u` is uniform (`LAMBDA_U = 0.05`); `g_centre` is a Gaussian at the image
   centre with standard deviations `(0.25 H, 0.25 W)`; `g_k` is an isotropic
   Gaussian with standard deviation `0.5 r_k` at the centroid of `M_k`
   (for faces shifted up by `0.2 r_k`, towards the eyes). Every component is
   evaluated at pixel centres and normalised to sum 1 on the grid (so it is
   truncated to the image). Objects take `m_obj = LAMBDA_OBJ W / (W + W0)`
   (`LAMBDA_OBJ = 0.85`, `W0 = 0.5`): salient objects pull gaze away from the
   centre; the centre bias takes the rest, `m_c = 1 - LAMBDA_U - m_obj >= 0.1`.

6. Fixations (float32 `[N, 2]`, `(row, column)`, 0-based)
   `num_observers` observers; observer `o` makes `n_o = 1 + Binomial(10,
   0.5)` fixations, each drawn i.i.d. from `p` (a pixel, then a uniform
   position inside it, clipped to `[0, H-1] x [0, W-1]`). The sequential
   dependence of real scanpaths (inhibition of return) is not modelled.
   `fixation_map` is `aesthal.fixations.blur_fixation_map` of the binary map
   of the points with `sigma = FIXATION_SIGMA W` (`FIXATION_SIGMA = 0.03`),
   in [0, 1], stored as uint16 (`round(65535 x)`).

7. Aesthetics (int32 `[10]`, votes for scores 1..10)
   Composition factors, all computed from quantities above:
     - thirds `f_T = exp(-d^2 / (2 * 0.08^2))`, `d` the distance from the
       subject's centroid, in image-normalised coordinates `(row / (H-1),
       col / (W-1))`, to the nearest of the four thirds intersections;
     - subject strength `f_S = w_k* / (w_k* + W0)`;
     - clutter `f_C = 0.7 (W - w_k*) / W + 0.3 t` in [0, 1];
     - blur `b` (step 3); exposure `|e|` (step 3);
     - colour harmony `f_H` = mean over all pairs `(i, j)` of the hues
       {background, each object} (in turns, [0, 1)) of
       `cos(4 pi (h_i - h_j))`: +1 for equal or complementary hues, -1 a
       quarter turn apart.
   Latent score

       q = clip(MU + A_T f_T + A_S f_S - A_C f_C - A_B b + A_H f_H
                - A_E |e| + eps, 1.5, 9.5),   eps ~ N(0, 0.3^2)

   with `MU = 5.5, A_T = 1.5, A_S = 1.0, A_C = 1.5, A_B = 1.5, A_H = 0.75,
   A_E = 1.0`. `R ~ U{min_raters..max_raters}` raters; rater `j` votes
   `clip(floor(q + beta_j + nu_j + 0.5), 1, 10)` with bias `beta_j ~ N(0, 0.5^2)`
   and noise `nu_j ~ N(0, 1)`.

Shared causes. The conspicuities `w_k` drive both tasks: they set how much
fixation mass lands on each object (step 5) and, through the subject
`k*`, three of the aesthetic factors (`f_T` uses the subject's position,
`f_S` its strength, `f_C` the competitors' strength). A model that finds the
subject for saliency has found what aesthetics needs, and vice versa. Blur,
exposure and harmony affect aesthetics only (and saliency only weakly,
through `c_k`); texture affects both (contrast and clutter).

Every example is labelled for both tasks; partial labels for experiments come
from the pipeline's label edits (`aesthal.data.SourceSpec`). The order of
the random draws is the code's; changing it changes every example, so bump
the builder's version when you do.
"""

from __future__ import annotations

import colorsys
import dataclasses
import math

import cv2
import numpy as np

from aesthal import fixations as fixations_lib

OBJECT_TYPES = ("disk", "square", "triangle", "face")
OBJECT_TYPE_PROBS = (0.3, 0.3, 0.2, 0.2)
SEMANTIC_PRIOR = {"disk": 1.0, "square": 1.0, "triangle": 1.3, "face": 4.0}
TEXTURE_MAX = 40.0
BLUR_MAX = 0.025
EPS_C = 0.05
A_REF = 0.02
LAMBDA_U = 0.05
LAMBDA_OBJ = 0.85
W0 = 0.5
CENTRE_SIGMA = 0.25
OBJECT_SIGMA = 0.5
FIXATION_SIGMA = 0.03
THIRDS_SIGMA = 0.08
MU = 5.5
A_T, A_S, A_C, A_B, A_H, A_E = 1.5, 1.0, 1.5, 1.5, 0.75, 1.0
LATENT_NOISE = 0.3
RATER_BIAS = 0.5
RATER_NOISE = 1.0
SPLIT_CODES = {"train": 0, "validation": 1, "test": 2}


@dataclasses.dataclass(frozen=True)
class SceneConfig:
    """Sizes and counts of generated scenes.

    Attributes:
        height: image height in pixels.
        width: image width in pixels.
        num_observers: simulated observers per image.
        min_raters: fewest simulated raters per image (inclusive).
        max_raters: most simulated raters per image (inclusive).
        max_objects: most objects per scene (at least 1 is drawn).
    """

    height: int = 96
    width: int = 128
    num_observers: int = 8
    min_raters: int = 50
    max_raters: int = 200
    max_objects: int = 5

    def __post_init__(self):
        if self.height < 8 or self.width < 8:
            raise ValueError(
                f"image must be at least 8x8, got {self.height}x{self.width}"
            )
        if not 1 <= self.min_raters <= self.max_raters:
            raise ValueError(
                "need 1 <= min_raters <= max_raters, got "
                f"{self.min_raters}, {self.max_raters}"
            )
        if self.num_observers < 1 or self.max_objects < 1:
            raise ValueError("num_observers and max_objects must be >= 1")


@dataclasses.dataclass(frozen=True)
class Composition:
    """The aesthetic factors of one scene (section 7 of the module docstring).

    Attributes:
        thirds: `f_T` in (0, 1].
        subject: `f_S` in [0, 1).
        clutter: `f_C` in [0, 1].
        blur: `b` in [0, 1].
        exposure: `|e|` in stops, in [0, 1.2].
        harmony: `f_H` in [-1, 1].
    """

    thirds: float
    subject: float
    clutter: float
    blur: float
    exposure: float
    harmony: float


@dataclasses.dataclass(frozen=True)
class Scene:
    """One generated example.

    Attributes:
        image: uint8 `[H, W, 3]` RGB.
        true_density: float32 `[H, W]`, non-negative, sums to 1.
        fixations: float32 `[N, 2]`, `(row, column)`, 0-based, inside the image.
        fixation_map: uint16 `[H, W, 1]`, the blurred fixation map scaled to
            0..65535.
        aesthetics_votes: int32 `[10]`, votes for scores 1..10.
        composition: the aesthetic factors.
        latent_score: the noiseless-rater score `q` in [1.5, 9.5].
        conspicuity: float64 `[K]`, `w_k` per object in painting order.
        object_types: the `K` object types in painting order.
        subject_mass: share of `p` inside the subject's visible mask.
    """

    image: np.ndarray
    true_density: np.ndarray
    fixations: np.ndarray
    fixation_map: np.ndarray
    aesthetics_votes: np.ndarray
    composition: Composition
    latent_score: float
    conspicuity: np.ndarray
    object_types: tuple[str, ...]
    subject_mass: float


def example_seed(base_seed: int, split: str, index: int) -> np.random.SeedSequence:
    """The seed of example `index` of `split`: independent of generation order.

    Args:
        base_seed: the builder config's seed.
        split: one of "train", "validation", "test".
        index: 0-based example index within the split.

    Returns:
        A `np.random.SeedSequence` for `generate_scene`.
    """
    if split not in SPLIT_CODES:
        raise ValueError(
            f"unknown split {split!r}; expected one of {list(SPLIT_CODES)}"
        )
    return np.random.SeedSequence([int(base_seed), SPLIT_CODES[split], int(index)])


def aesthetic_latent_score(c: Composition) -> float:
    """The noiseless latent score `q` before `eps` and clipping (section 7).

    Args:
        c: the composition factors.

    Returns:
        `MU + A_T f_T + A_S f_S - A_C f_C - A_B b + A_H f_H - A_E |e|`.
    """
    return (
        MU
        + A_T * c.thirds
        + A_S * c.subject
        - A_C * c.clutter
        - A_B * c.blur
        + A_H * c.harmony
        - A_E * c.exposure
    )


def thirds_factor(row: float, col: float, height: int, width: int) -> float:
    """`f_T` of a subject centroid at pixel `(row, col)`; 1 on a thirds point."""
    y = row / max(height - 1, 1)
    x = col / max(width - 1, 1)
    dy = min(abs(y - 1 / 3), abs(y - 2 / 3))
    dx = min(abs(x - 1 / 3), abs(x - 2 / 3))
    return math.exp(-(dx * dx + dy * dy) / (2 * THIRDS_SIGMA**2))


def harmony_factor(hues: list[float]) -> float:
    """`f_H`: mean of `cos(4 pi dh)` over hue pairs (hues in turns, [0, 1))."""
    vals = [
        math.cos(4 * math.pi * (hues[i] - hues[j]))
        for i in range(len(hues))
        for j in range(i + 1, len(hues))
    ]
    return float(np.mean(vals)) if vals else 0.0


def _hsv_to_rgb255(h: float, s: float, v: float) -> tuple[float, float, float]:
    r, g, b = colorsys.hsv_to_rgb(h % 1.0, s, v)
    return (255.0 * r, 255.0 * g, 255.0 * b)


def _gaussian_1d(n: int, mean: float, sigma: float) -> np.ndarray:
    x = np.arange(n, dtype=np.float64)
    g = np.exp(-0.5 * ((x - mean) / sigma) ** 2)
    return g / max(g.sum(), 1e-300)


def _gaussian_2d(h: int, w: int, mean: tuple[float, float], sigma: tuple[float, float]):
    """Separable Gaussian at pixel centres, normalised to sum 1 on the grid."""
    return np.outer(
        _gaussian_1d(h, mean[0], sigma[0]), _gaussian_1d(w, mean[1], sigma[1])
    )


def _draw_object(canvas, mask, kind, centre, r, colour, rng) -> None:
    """Paints one object on `canvas` (float32 RGB) and its shape on `mask`."""
    cy, cx = centre
    # cv2 takes (x, y) integer points; draw with 4 bits of sub-pixel precision.
    shift = 4
    scale = 1 << shift

    def pt(y, x):
        return (int(round(x * scale)), int(round(y * scale)))

    if kind == "disk":
        for img, col in ((canvas, colour), (mask, 1)):
            cv2.circle(
                img, pt(cy, cx), int(round(r * scale)), col, -1, cv2.LINE_8, shift
            )
    elif kind in ("square", "triangle"):
        angle = rng.uniform(0, 2 * np.pi)
        n = 4 if kind == "square" else 3
        rr = r * (1.0 if kind == "square" else 1.2)
        poly = np.array(
            [
                pt(
                    cy + rr * np.sin(angle + 2 * np.pi * i / n),
                    cx + rr * np.cos(angle + 2 * np.pi * i / n),
                )
                for i in range(n)
            ],
            dtype=np.int32,
        )
        for img, col in ((canvas, colour), (mask, 1)):
            cv2.fillPoly(img, [poly], col, cv2.LINE_8, shift)
    else:  # face
        axes = (int(round(0.8 * r * scale)), int(round(r * scale)))
        for img, col in ((canvas, colour), (mask, 1)):
            cv2.ellipse(img, pt(cy, cx), axes, 0, 0, 360, col, -1, cv2.LINE_8, shift)
        dark = (30.0, 20.0, 20.0)
        eye_r = max(int(round(0.15 * r * scale)), scale)
        for side in (-1, 1):
            cv2.circle(
                canvas,
                pt(cy - 0.2 * r, cx + side * 0.35 * r),
                eye_r,
                dark,
                -1,
                cv2.LINE_8,
                shift,
            )
        thick = max(1, int(round(0.08 * r)))
        cv2.line(
            canvas,
            pt(cy + 0.4 * r, cx - 0.3 * r),
            pt(cy + 0.4 * r, cx + 0.3 * r),
            dark,
            thick,
            cv2.LINE_8,
            shift,
        )


def generate_scene(config: SceneConfig, seed: int | np.random.SeedSequence) -> Scene:
    """Generates one scene with its labels (the model in the module docstring).

    Args:
        config: sizes and counts.
        seed: an int or a `SeedSequence` (see `example_seed`); equal seeds give
            identical scenes.

    Returns:
        The `Scene`.
    """
    rng = np.random.default_rng(seed)
    h, w = config.height, config.width
    s = min(h, w)

    # 1. Background.
    h_bg = rng.uniform(0, 1)
    bg = np.array(_hsv_to_rgb255(h_bg, rng.uniform(0.15, 0.6), rng.uniform(0.35, 0.75)))
    tau = rng.uniform(0, TEXTURE_MAX)
    noise = rng.standard_normal((math.ceil(h / 8), math.ceil(w / 8))).astype(np.float32)
    noise = cv2.resize(noise, (w, h), interpolation=cv2.INTER_CUBIC)
    noise = noise / max(float(noise.std()), 1e-6)
    canvas = np.empty((h, w, 3), np.float32)
    canvas[...] = bg.astype(np.float32)
    canvas += (tau * noise)[..., None]

    # 2. Objects.
    k_objects = int(rng.integers(1, config.max_objects + 1))
    types, radii, hues, masks = [], [], [h_bg], []
    for _ in range(k_objects):
        kind = OBJECT_TYPES[rng.choice(len(OBJECT_TYPES), p=OBJECT_TYPE_PROBS)]
        centre = (rng.uniform(0.1, 0.9) * (h - 1), rng.uniform(0.1, 0.9) * (w - 1))
        r = rng.uniform(0.06, 0.16) * s
        if kind == "face":
            hue = 0.07
            colour = _hsv_to_rgb255(hue, rng.uniform(0.3, 0.6), rng.uniform(0.55, 0.95))
        else:
            hue = rng.uniform(0, 1)
            colour = _hsv_to_rgb255(hue, rng.uniform(0.2, 1.0), rng.uniform(0.2, 1.0))
        mask = np.zeros((h, w), np.uint8)
        _draw_object(canvas, mask, kind, centre, r, colour, rng)
        types.append(kind)
        radii.append(r)
        hues.append(hue)
        masks.append(mask.astype(bool))
    visible = []
    later = np.zeros((h, w), bool)
    for mask in reversed(masks):
        visible.append(mask & ~later)
        later |= mask
    visible.reverse()

    # 3. Exposure and blur.
    e = rng.uniform(-1.2, 1.2) if rng.uniform() < 0.5 else 0.0
    beta = rng.uniform(0.003, BLUR_MAX) if rng.uniform() < 0.4 else 0.0
    canvas = np.clip(canvas * (2.0**e), 0, 255)
    if beta > 0:
        canvas = cv2.GaussianBlur(canvas, (0, 0), sigmaX=beta * w, sigmaY=beta * w)
    image = np.clip(np.round(canvas), 0, 255).astype(np.uint8)

    # 4. Conspicuity, measured on the final image.
    img_f = image.astype(np.float64)
    conspicuity = np.zeros(k_objects)
    centroids = []
    for k, (vis, r) in enumerate(zip(visible, radii, strict=True)):
        area = int(vis.sum())
        if area == 0:
            centroids.append(None)
            continue
        rows, cols = np.nonzero(vis)
        centroids.append((rows.mean(), cols.mean()))
        d = int(math.ceil(0.5 * r))
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * d + 1, 2 * d + 1))
        ring = cv2.dilate(vis.astype(np.uint8), kernel).astype(bool) & ~vis
        inside = img_f[vis].mean(axis=0)
        outside = img_f[ring].mean(axis=0) if ring.any() else inside
        contrast = float(np.linalg.norm(inside - outside) / (255.0 * math.sqrt(3.0)))
        a = area / (h * w)
        conspicuity[k] = (
            SEMANTIC_PRIOR[types[k]] * (EPS_C + contrast) * math.sqrt(a / A_REF)
        )
    total = float(conspicuity.sum())
    if total <= 0:  # cannot happen: the last object painted is never occluded
        raise RuntimeError(f"scene from seed {seed!r} has no visible object")
    subject = int(np.argmax(conspicuity))

    # 5. True density.
    m_obj = LAMBDA_OBJ * total / (total + W0)
    m_c = 1.0 - LAMBDA_U - m_obj
    density = np.full((h, w), LAMBDA_U / (h * w))
    density += m_c * _gaussian_2d(
        h, w, ((h - 1) / 2, (w - 1) / 2), (CENTRE_SIGMA * h, CENTRE_SIGMA * w)
    )
    for k in range(k_objects):
        if conspicuity[k] <= 0:
            continue
        cy, cx = centroids[k]
        if types[k] == "face":
            cy -= 0.2 * radii[k]
        sig = max(OBJECT_SIGMA * radii[k], 0.5)
        density += (
            m_obj * conspicuity[k] / total * _gaussian_2d(h, w, (cy, cx), (sig, sig))
        )
    density = (density / density.sum()).astype(np.float32)
    density /= density.sum(dtype=np.float64)
    subject_mass = float(density[visible[subject]].sum())

    # 6. Fixations.
    n_fix = int(sum(1 + rng.binomial(10, 0.5) for _ in range(config.num_observers)))
    flat = rng.choice(
        h * w,
        size=n_fix,
        p=density.ravel().astype(np.float64) / density.sum(dtype=np.float64),
    )
    pts = np.stack([flat // w, flat % w], axis=-1).astype(np.float64)
    pts += rng.uniform(-0.5, 0.5, size=pts.shape)
    pts[:, 0] = np.clip(pts[:, 0], 0, h - 1)
    pts[:, 1] = np.clip(pts[:, 1], 0, w - 1)
    points = pts.astype(np.float32)
    fmap = fixations_lib.blur_fixation_map(
        fixations_lib.points_to_binary_map(points, (h, w)), FIXATION_SIGMA * w
    )
    fixation_map = np.round(fmap * 65535.0).astype(np.uint16)[..., None]

    # 7. Aesthetics.
    sy, sx = centroids[subject]
    w_star = float(conspicuity[subject])
    composition = Composition(
        thirds=thirds_factor(sy, sx, h, w),
        subject=w_star / (w_star + W0),
        clutter=0.7 * (total - w_star) / total + 0.3 * (tau / TEXTURE_MAX),
        blur=beta / BLUR_MAX,
        exposure=abs(e),
        harmony=harmony_factor(hues),
    )
    q = float(
        np.clip(
            aesthetic_latent_score(composition) + rng.normal(0, LATENT_NOISE), 1.5, 9.5
        )
    )
    n_raters = int(rng.integers(config.min_raters, config.max_raters + 1))
    ratings = (
        q + rng.normal(0, RATER_BIAS, n_raters) + rng.normal(0, RATER_NOISE, n_raters)
    )
    ratings = np.clip(np.floor(ratings + 0.5), 1, 10).astype(np.int64)
    votes = np.bincount(ratings - 1, minlength=10).astype(np.int32)

    return Scene(
        image=image,
        true_density=density,
        fixations=points,
        fixation_map=fixation_map,
        aesthetics_votes=votes,
        composition=composition,
        latent_score=q,
        conspicuity=conspicuity,
        object_types=tuple(types),
        subject_mass=subject_mass,
    )
