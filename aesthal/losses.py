"""Saliency (KLD, CC, NSS) and aesthetics (EMD) in TensorFlow: losses, and the
formulas the streaming metrics share.

Every function here returns one value per example (`[B]`, float32) and
normalises its target itself, so fixation maps of any non-negative scale and raw
vote counts are accepted. An all-zero target (an unlabelled example) gives a
finite value (never NaN) that `masked_sum_and_count` then drops. Everything is
computed in float32, whatever the model's compute dtype.

Losses and streaming metrics (`aesthal.metrics.streaming`) call the same
`cc`, `nss` and `emd`, with different settings, on purpose:

| | losses (training; the defaults) | streaming metrics (MIT reference definitions) |
| --- | --- | --- |
| CC | `eps=1e-12` in the variances (smooth, never 0/0) | `eps=0`, 0/0 -> 0 (`CC.m`) |
| NSS | variance over N (`ddof=0`), plus `eps` | std over N - 1 (`ddof=1`; `NSS.m`) |
| EMD | squared, no root (`root=False`) | `(mean |dCDF|^r)^(1/r)` (NIMA) |
| KLD | exact, from the log-density (`kld`) | `KLdiv.m` with its eps (`SaliencyKLD`) |

Formulas (per example; sums over the `N = H * W` pixels `i`, or the 10 scores `k`):

- target density `t_i = g_i / sum_j g_j` (0 where the map sums to 0);
- `kld = sum_i t_i * (log t_i - log q_i)`, with `0 log 0 = 0` and `log q`
  taken straight from the model's log-softmax (never `log(softmax)`);
- `cc = cov(q, t) / sqrt((var(q) + eps) * (var(t) + eps))`, Pearson's
  correlation over pixels (population moments, `eps = 1e-12`);
- `nss = sum_i t_i * (q_i - mean(q)) / sqrt(var(q) + eps)`: the fixation map
  (normalised to sum 1) weights the standardised prediction. With a binary map
  of fixated pixels this is exactly the classic NSS (the mean standardised
  value at the fixations); with a blurred map it is its smooth counterpart;
- `squared_emd = mean_k (CDF_p(k) - CDF_s(k))**2` over the 10 scores: the
  square of NIMA's EMD with r = 2 (Talebi & Milanfar 2018), smooth at 0.
"""

from __future__ import annotations

from collections.abc import Mapping

import keras
import tensorflow as tf

_EPS = 1e-12


def _f32(x) -> tf.Tensor:
    return tf.cast(x, tf.float32)


def normalize_map(fixation_map) -> tf.Tensor:
    """Scales each map to sum 1 (all-zero maps stay zero).

    Args:
        fixation_map: non-negative `[B, H, W, 1]` (any scale).

    Returns:
        float32 `[B, H, W, 1]`, sums to 1 per image (0 for an all-zero map).
    """
    fixation_map = _f32(fixation_map)
    total = tf.reduce_sum(fixation_map, axis=[1, 2, 3], keepdims=True)
    return tf.math.divide_no_nan(fixation_map, total)


def normalize_distribution(scores) -> tf.Tensor:
    """Scales vote counts `[B, 10]` to a distribution (all-zero rows stay zero)."""
    scores = _f32(scores)
    return tf.math.divide_no_nan(scores, tf.reduce_sum(scores, -1, keepdims=True))


def kld(target_map, log_density) -> tf.Tensor:
    """KL(target || prediction) per example, in nats.

    The saliency KL divergence of Bylinskii et al. (TPAMI 2019, "KLdiv.m")
    and of the SALICON-era models (e.g. SAM, ML-Net), computed exactly from the
    log-density instead of with MIT's `eps` regulariser (the evaluation metric
    `aesthal.metrics.saliency.kld` keeps the `eps`).

    Args:
        target_map: non-negative `[B, H, W, 1]`, any scale.
        log_density: float `[B, H, W, 1]`, the model's log-density
            (`logsumexp` over pixels = 0).

    Returns:
        float32 `[B]`, >= 0; 0 for an all-zero target.
    """
    t = normalize_map(target_map)
    log_q = _f32(log_density)
    return tf.reduce_sum(tf.math.xlogy(t, t) - t * log_q, axis=[1, 2, 3])


def _standardize(x, ddof: int = 0):
    """`(x - mean, variance)` over each map's pixels, variance over N - ddof."""
    mean = tf.reduce_mean(x, axis=[1, 2, 3], keepdims=True)
    centred = x - mean
    if ddof == 0:
        var = tf.reduce_mean(tf.square(centred), axis=[1, 2, 3], keepdims=True)
    else:
        pixels = tf.cast(tf.reduce_prod(tf.shape(x)[1:]), tf.float32)
        var = tf.reduce_sum(tf.square(centred), axis=[1, 2, 3], keepdims=True) / (
            pixels - ddof
        )
    return centred, var


def cc(target_map, density, eps: float = _EPS) -> tf.Tensor:
    """Pearson's correlation between target and predicted maps, per example.

    `cov(q, t) / sqrt((var(q) + eps) * (var(t) + eps))` (population moments).
    The loss uses `eps = 1e-12`; with `eps=0` it is MIT's `CC.m`, a constant
    map scoring 0 (what `aesthal.metrics.streaming.SaliencyCC` reports).

    Args:
        target_map: non-negative `[B, H, W, 1]`, any scale.
        density: float `[B, H, W, 1]`, the predicted map (any scale).
        eps: added to each variance.

    Returns:
        float32 `[B]` in -1..1; 0 for an all-zero (constant) target.
    """
    t_c, t_var = _standardize(normalize_map(target_map))
    q_c, q_var = _standardize(_f32(density))
    cov = tf.reduce_mean(t_c * q_c, axis=[1, 2, 3])
    t_var, q_var = tf.squeeze(t_var, [1, 2, 3]), tf.squeeze(q_var, [1, 2, 3])
    if eps == 0:
        return tf.math.divide_no_nan(cov, tf.sqrt(t_var * q_var))
    return cov / tf.sqrt((t_var + eps) * (q_var + eps))


def nss(target_map, density, ddof: int = 0, eps: float = _EPS) -> tf.Tensor:
    """Normalised scanpath saliency with the fixation map as weights, per example.

    `sum_i t_i * (q_i - mean(q)) / sqrt(var(q) + eps)` with `t` the target
    normalised to sum 1 (see the module docstring). On a binary fixation map
    this is NSS as defined by Peters et al. (2005) and Bylinskii et al. (TPAMI
    2019, "NSS.m"). The loss divides `var` by N (`ddof=0`) and adds `eps`;
    MIT's `std` divides by N - 1 (`ddof=1, eps=0`, what
    `aesthal.metrics.streaming.SaliencyNSS` reports; a constant map scores 0).
    The difference is a factor sqrt(N / (N - 1)), about 1 + 1e-5 at 96x128,
    immaterial for a loss.

    Args:
        target_map: non-negative `[B, H, W, 1]`: a binary fixation map or a
            blurred fixation map, any scale.
        density: float `[B, H, W, 1]`, the predicted map.
        ddof: the variance divides by N - ddof.
        eps: added to the variance.

    Returns:
        float32 `[B]`, higher is better; 0 for an all-zero target.
    """
    t = normalize_map(target_map)
    q_c, q_var = _standardize(_f32(density), ddof)
    if eps == 0:
        z = tf.math.divide_no_nan(q_c, tf.sqrt(q_var))
    else:
        z = q_c / tf.sqrt(q_var + eps)
    return tf.reduce_sum(t * z, axis=[1, 2, 3])


def emd(target_scores, predicted, r: float = 2.0, root: bool = True) -> tf.Tensor:
    """Earth mover's distance between score CDFs (NIMA), per example.

    `(mean_k |CDF_target(k) - CDF_pred(k)|**r) ** (1 / r)` (Talebi & Milanfar
    2018); with `root=False` the power `1 / r` is left out (the training loss,
    `squared_emd`, is `r=2, root=False`: smooth at 0).

    Args:
        target_scores: non-negative `[B, 10]` vote counts or a distribution over
            the scores 1..10.
        predicted: `[B, 10]`, a distribution (sums to 1).
        r: the norm's exponent (>= 1).
        root: take the `1 / r` power.

    Returns:
        float32 `[B]` in 0..1.
    """
    t_cdf = tf.cumsum(normalize_distribution(target_scores), axis=-1)
    p_cdf = tf.cumsum(_f32(predicted), axis=-1)
    if r == 2 and not root:
        return tf.reduce_mean(tf.square(t_cdf - p_cdf), axis=-1)
    distance = tf.reduce_mean(tf.abs(t_cdf - p_cdf) ** r, axis=-1)
    return distance ** (1.0 / r) if root else distance


def squared_emd(target_scores, predicted) -> tf.Tensor:
    """Squared earth mover's distance between score CDFs (NIMA, r=2), per example.

    Args:
        target_scores: non-negative `[B, 10]` vote counts or a distribution over
            the scores 1..10.
        predicted: `[B, 10]`, a distribution (sums to 1).

    Returns:
        float32 `[B]` in 0..1: `mean_k (CDF_target(k) - CDF_pred(k))**2`.
    """
    return emd(target_scores, predicted, r=2.0, root=False)


def masked_sum_and_count(values, mask) -> tuple[tf.Tensor, tf.Tensor]:
    """Sum of `values` where `mask` is 1, and the number of such examples.

    Args:
        values: float `[B]` per-example losses.
        mask: `[B]` with values 0/1, or None (all 1).

    Returns:
        `(sum, count)`, float32 scalars. Examples with mask 0 contribute exactly
        0 (also when their value is not finite) and no gradient.
    """
    values = _f32(values)
    if mask is None:
        mask = tf.ones_like(values)
    mask = tf.reshape(_f32(mask), tf.shape(values))
    selected = mask > 0
    total = tf.reduce_sum(tf.where(selected, values * mask, tf.zeros_like(values)))
    return total, tf.reduce_sum(mask)


@keras.saving.register_keras_serializable(package="aesthal")
class SaliencyLoss:
    """`kld_weight * KLD - cc_weight * CC - nss_weight * NSS`, per example.

    CC and NSS are similarities, so their (non-negative) weights are
    subtracted: `SaliencyLoss(1.0, 0.1, 0.1)` is the common
    `KLD - 0.1 CC - 0.1 NSS`. CC and NSS are computed on the density
    `exp(log_density)`.

    Args:
        kld_weight: weight of the KL divergence (>= 0).
        cc_weight: weight of the correlation coefficient (>= 0).
        nss_weight: weight of the NSS (>= 0).
    """

    def __init__(
        self, kld_weight: float = 1.0, cc_weight: float = 0.0, nss_weight: float = 0.0
    ):
        for name, value in (
            ("kld_weight", kld_weight),
            ("cc_weight", cc_weight),
            ("nss_weight", nss_weight),
        ):
            if not value >= 0:
                raise ValueError(f"SaliencyLoss: {name}={value} must be >= 0.")
        self.kld_weight = float(kld_weight)
        self.cc_weight = float(cc_weight)
        self.nss_weight = float(nss_weight)

    def __call__(self, target_map, log_density) -> tf.Tensor:
        """Per-example loss, float32 `[B]`, for maps `[B, H, W, 1]`."""
        loss = 0.0
        if self.kld_weight:
            loss += self.kld_weight * kld(target_map, log_density)
        if self.cc_weight or self.nss_weight:
            density = tf.exp(_f32(log_density))
            if self.cc_weight:
                loss -= self.cc_weight * cc(target_map, density)
            if self.nss_weight:
                loss -= self.nss_weight * nss(target_map, density)
        if isinstance(loss, float):
            loss = tf.zeros(tf.shape(log_density)[:1], tf.float32)
        return loss

    def get_config(self) -> dict:
        return {
            "kld_weight": self.kld_weight,
            "cc_weight": self.cc_weight,
            "nss_weight": self.nss_weight,
        }

    @classmethod
    def from_config(cls, config: Mapping) -> SaliencyLoss:
        return cls(**config)

    def __repr__(self) -> str:
        return (
            f"SaliencyLoss(kld_weight={self.kld_weight}, cc_weight={self.cc_weight}, "
            f"nss_weight={self.nss_weight})"
        )
