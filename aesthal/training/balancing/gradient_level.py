"""Gradient-level task balancing on the shared group: GradNorm, PCGrad, CAGrad.

`aesthal.training.Trainer.train_step` normally takes one gradient of the
weighted total loss and splits it by variable group
(`aesthal.training.balancing.loss_level`). A `GradientBalancing` strategy
(`compile(loss_weighting="gradnorm" | "pcgrad" | "cagrad")`) changes only the
*shared* group's gradient:

1. per task `t`, one backward pass of `L_t` (the task's loss with its side
   heads') gives `g_t`, its gradient for the shared variables, and the
   gradient for the task's own head group;
2. under `tf.distribute`, the `g_t` (and the task losses) are summed across
   replicas *before* any projection, with the existing per-replica loss
   scaling (each replica's `L_t` is its share of the global-batch mean), so
   every replica holds the single-device `g_t`;
3. `balance` combines the `g_t` into one shared gradient, which only the
   first replica passes to the optimizer (the others pass zeros), so the
   optimizer's own all-reduce (a sum; Keras 3.15 has no switch to skip it)
   returns it exactly: N replicas train like one device;
4. the head groups keep their own gradients: `w_t * dL_t/dhead_t` (`w_t = 1`
   for PCGrad and CAGrad, GradNorm's current weight otherwise).

All methods treat the shared gradients of all shared variables as one vector
(the concatenation over variables), as the papers' `g_i = grad_theta L_i`.
Cost: one backward pass per task instead of one in total (see
`experiments/bench.py --parts=balancing`). They need shared variables:
`compile` refuses them for a model without any (a frozen trunk; soft sharing,
when it comes, has no shared group either).

Tasks here are `aesthal.config.TASKS` (two), but PCGrad and GradNorm are
written for any number K of tasks; CAGrad's dual is solved in closed form for
K = 2. See docs/balancing.md.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import keras
import tensorflow as tf

from aesthal.training.balancing.base import LossWeighting, register


# ------------------------------------------------------------- the formulas
def pcgrad_combine(gradients: tf.Tensor, orders: Sequence[tf.Tensor]) -> tf.Tensor:
    """PCGrad's update direction (Yu et al., NeurIPS 2020, Sec. 2.2, Algorithm 1).

    For each task i, `g_i^PC` starts at `g_i` and, for each other task j in
    `orders[i]`, if `g_i^PC . g_j < 0` (a conflict) it is projected onto the
    normal plane of `g_j`:

        g_i^PC <- g_i^PC - (g_i^PC . g_j) / ||g_j||^2 * g_j

    (always against the *original* `g_j`). The update is `sum_i g_i^PC`. With
    two tasks each `orders[i]` has one element, so the order does not matter.

    Args:
        gradients: float32 `[K, P]`, one flattened gradient per task.
        orders: K int tensors `[K - 1]`: the other tasks' indices, in the
            order task i is projected against them.

    Returns:
        float32 `[P]`.
    """
    count = gradients.shape[0]
    squared = tf.reduce_sum(gradients * gradients, axis=1)
    projected = []
    for i in range(count):
        g = gradients[i]
        for step in range(count - 1):
            j = orders[i][step]
            other = tf.gather(gradients, j)
            dot = tf.reduce_sum(g * other)
            # dot < 0 implies ||g_j|| > 0, so the division is safe.
            g = (
                g
                - tf.math.divide_no_nan(tf.minimum(dot, 0.0), tf.gather(squared, j))
                * other
            )
        projected.append(g)
    return tf.add_n(projected)


def cagrad_direction(g1: tf.Tensor, g2: tf.Tensor, c: float = 0.4) -> tf.Tensor:
    """CAGrad's update direction for two tasks (Liu et al., NeurIPS 2021, Algorithm 1).

    With `g0 = (g1 + g2) / 2` (the average gradient), CAGrad takes the update

        d = g0 + sqrt(phi) / ||g_w|| * g_w,   phi = c^2 ||g0||^2,

    where `g_w = w g1 + (1 - w) g2` and `w` minimises the dual objective of
    Sec. 3.1, `F(w) = g_w . g0 + sqrt(phi) ||g_w||` over `w` in [0, 1]. `F` is
    convex; with the Gram entries `a = g1.g1`, `b = g2.g2`, `m = g1.g2` and
    `u = A w + B` (`A = ||g1 - g2||^2`, `B = m - b`, `D = ab - m^2 >= 0`),

        F'(w) = (a - b) / 2 + sqrt(phi) sqrt(A) u / sqrt(u^2 + D),

    whose zero is `u = sign(k) |k| sqrt(D / (A - k^2))` with
    `k = (b - a) / (2 sqrt(phi))` when `A > k^2` (clipped to [0, 1]); otherwise
    `F` is monotone and the minimum is at `w = 0` (a > b) or `w = 1`. `c = 0`
    gives `d = g0`. No rescaling of `d` (the official code's optional
    `1 / (1 + c^2)` is not applied). Checked against a grid search of `F` and
    the example of torchjd's `CAGrad` documentation.

    Args:
        g1, g2: float32 `[P]`, the two tasks' flattened gradients.
        c: the radius of the ball around `g0`, in [0, 1); 0.4 in the paper's
            NYUv2 experiments.

    Returns:
        float32 `[P]`.
    """
    a = tf.reduce_sum(g1 * g1)
    b = tf.reduce_sum(g2 * g2)
    m = tf.reduce_sum(g1 * g2)
    g0 = 0.5 * (g1 + g2)
    radius = c * tf.sqrt(tf.maximum(tf.reduce_sum(g0 * g0), 0.0))
    big_a = a - 2.0 * m + b
    big_b = m - b
    big_d = tf.maximum(a * b - m * m, 0.0)
    kappa = tf.math.divide_no_nan(b - a, 2.0 * radius)
    interior = (big_a > kappa * kappa) & (radius > 0.0) & (big_a > 0.0)
    safe_gap = tf.where(interior, big_a - kappa * kappa, 1.0)
    u = tf.sign(kappa) * tf.abs(kappa) * tf.sqrt(big_d / safe_gap)
    w_interior = tf.math.divide_no_nan(u - big_b, big_a)
    w_boundary = tf.where(a > b, 0.0, 1.0)
    w = tf.where(interior, w_interior, w_boundary)
    w = tf.where(big_a > 0.0, w, 0.5)  # g1 == g2: every w gives the same g_w
    w = tf.clip_by_value(w, 0.0, 1.0)
    g_w = w * g1 + (1.0 - w) * g2
    norm_w = tf.sqrt(tf.reduce_sum(g_w * g_w))
    return g0 + tf.math.divide_no_nan(radius, norm_w) * g_w


def gradnorm_weight_gradient(
    weights: tf.Tensor,
    norms: tf.Tensor,
    losses: tf.Tensor,
    initial_losses: tf.Tensor,
    alpha: float,
) -> tuple[tf.Tensor, tf.Tensor]:
    """GradNorm's loss and its gradient for the task weights (Chen et al., ICML 2018).

    With `G_i = w_i ||grad_W L_i||` (the weighted gradient norm at the layer W),
    `G_bar = mean_i G_i`, the loss ratios `L~_i = L_i(t) / L_i(0)` and the
    relative inverse training rates `r_i = L~_i / mean_j L~_j`,

        L_grad = sum_i | G_i - G_bar * r_i^alpha |        (the paper's eq. 2)

    where the target `G_bar * r_i^alpha` (eq. 1) is held constant. A task with
    `L_i(0) = 0` gets `L~_i = 0`.

    Args:
        weights: float32 `[K]`, the task weights `w_i(t)`.
        norms: float32 `[K]`, `||grad_W L_i||` (unweighted).
        losses: float32 `[K]`, `L_i(t)`.
        initial_losses: float32 `[K]`, `L_i(0)`.
        alpha: the asymmetry `alpha` >= 0.

    Returns:
        `(gradient, L_grad)`: float32 `[K]` `dL_grad/dw_i`, and the scalar loss.
    """
    weights = tf.convert_to_tensor(weights, tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(weights)
        norms_weighted = weights * norms
        ratios = tf.math.divide_no_nan(losses, initial_losses)
        rates = tf.math.divide_no_nan(ratios, tf.reduce_mean(ratios))
        target = tf.stop_gradient(tf.reduce_mean(norms_weighted) * rates**alpha)
        loss = tf.reduce_sum(tf.abs(norms_weighted - target))
    return tape.gradient(loss, weights), loss


# --------------------------------------------------------------- utilities
def first_replica_only(tensors: Sequence[tf.Tensor]) -> list[tf.Tensor]:
    """`tensors` on the first replica, zeros on the others.

    For values already all-reduced (equal on every replica) that an optimizer
    will sum across replicas again: the sum of one copy and zeros is the value
    itself, exactly. Outside a distribution strategy it returns `tensors`.
    """
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return list(tensors)
    first = tf.equal(context.replica_id_in_sync_group, 0)
    return [tf.where(first, t, tf.zeros_like(t)) for t in tensors]


def _flatten(tensors: Sequence[tf.Tensor]) -> tf.Tensor:
    return tf.concat([tf.reshape(t, [-1]) for t in tensors], axis=0)


def _unflatten(flat: tf.Tensor, like: Sequence[tf.Tensor]) -> list[tf.Tensor]:
    parts = tf.split(flat, [t.shape.num_elements() for t in like])
    return [tf.reshape(p, t.shape) for p, t in zip(parts, like, strict=True)]


# --------------------------------------------------------------- strategies
class GradientBalancing(LossWeighting):
    """Base class of the strategies that combine per-task shared gradients.

    The total loss they report is `sum_t w_t L_t` (`weights_by_task`, 1 unless
    the method learns weights); `train_step` calls `balance` with each task's
    gradient for the shared variables (all-reduced) and applies what it
    returns to the shared group, then, inside the NaN/Inf guard, calls
    `apply_update` with the update `balance` returned.
    """

    acts_on_gradients = True

    def balance(
        self,
        task_gradients: Mapping[str, Sequence[tf.Tensor]],
        task_losses: Mapping[str, tf.Tensor],
        norm_indices: Sequence[int],
        step: tf.Tensor,
    ) -> tuple[list[tf.Tensor], dict[str, tf.Tensor]]:
        """The shared group's gradient from the per-task ones.

        Args:
            task_gradients: `{task: [gradient per shared variable]}`, each the
                gradient of that task's loss, summed over replicas (the
                single-device value, equal on every replica).
            task_losses: `{task: float32 scalar}`, the global-batch task losses.
            norm_indices: positions in the shared variable list of the last
                shared layer's variables (GradNorm's `W`).
            step: int64 scalar, the number of training steps run before this one.

        Returns:
            `(gradients, update)`: one gradient per shared variable, and a dict
            of tensors for `apply_update` (empty when the method keeps no state).
        """
        raise NotImplementedError

    def apply_update(self, update: Mapping[str, tf.Tensor]) -> None:
        """Updates the method's own state; called only for applied steps."""

    def _stacked(self, task_gradients) -> tf.Tensor:
        return tf.stack([_flatten(task_gradients[t]) for t in self.tasks])


@register("pcgrad")
@keras.saving.register_keras_serializable(package="aesthal")
class PCGrad(GradientBalancing):
    """Projecting conflicting gradients (Yu et al., NeurIPS 2020).

    The shared gradient is `pcgrad_combine` of the tasks' shared gradients:
    each task's gradient projected onto the normal plane of every other task's
    gradient it conflicts with (negative dot product), in a random order per
    task, then summed. The order is drawn from a stateless generator seeded by
    `(seed, step)` (the same on every replica and in a rerun); with two tasks
    there is one other task and the order does not matter. The task weights
    are 1.

    Args:
        seed: seed of the projection orders.
    """

    def __init__(self, seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.seed = int(seed)

    def _orders(self, step) -> list[tf.Tensor]:
        count = len(self.tasks)
        orders = []
        for i in range(count):
            others = tf.constant([j for j in range(count) if j != i], tf.int32)
            if count > 2:
                seed = tf.stack(
                    [
                        tf.constant(self.seed, tf.int64),
                        tf.cast(step, tf.int64) * count + i,
                    ]
                )
                keys = tf.random.stateless_uniform([count - 1], seed=seed)
                others = tf.gather(others, tf.argsort(keys))
            orders.append(others)
        return orders

    def balance(self, task_gradients, task_losses, norm_indices, step):
        like = task_gradients[self.tasks[0]]
        combined = pcgrad_combine(self._stacked(task_gradients), self._orders(step))
        return _unflatten(combined, like), {}

    def get_config(self):
        config = super().get_config()
        config.update({"seed": self.seed})
        return config


@register("cagrad")
@keras.saving.register_keras_serializable(package="aesthal")
class CAGrad(GradientBalancing):
    """Conflict-averse gradient descent (Liu et al., NeurIPS 2021), two tasks.

    The shared gradient is `cagrad_direction(g_1, g_2, c)`: the update closest
    to the *average* gradient `g0` (within `c ||g0||`) that maximises the
    worst task's improvement. With `c = 0` it is `g0`, i.e. half of the fixed
    weights' shared gradient (`g1 + g2`); the heads keep their own
    gradients. The task weights are 1.

    Args:
        c: in [0, 1); the paper's default 0.4.
    """

    def __init__(self, c: float = 0.4, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= float(c) < 1.0:
            raise ValueError(f"CAGrad: c={c} must be in [0, 1).")
        self.c = float(c)

    def build_tasks(self, tasks):
        if len(tuple(tasks)) != 2:
            raise ValueError(
                f"CAGrad here solves its dual in closed form for 2 tasks; got "
                f"{len(tuple(tasks))} tasks {tuple(tasks)}."
            )
        super().build_tasks(tasks)

    def balance(self, task_gradients, task_losses, norm_indices, step):
        like = task_gradients[self.tasks[0]]
        stacked = self._stacked(task_gradients)
        return _unflatten(cagrad_direction(stacked[0], stacked[1], self.c), like), {}

    def get_config(self):
        config = super().get_config()
        config.update({"c": self.c})
        return config


@register("gradnorm")
@keras.saving.register_keras_serializable(package="aesthal")
class GradNorm(GradientBalancing):
    """GradNorm (Chen, Badrinarayanan, Lee & Rabinovich, ICML 2018, Algorithm 1).

    Learned task weights `w_i` (start at 1): the total loss is
    `sum_i w_i(t) L_i(t)`, so the shared gradient is `sum_i w_i g_i` and each
    head gets `w_i dL_i/dhead_i`. The norms `||grad_W L_i||` are taken at `W`,
    the last shared layer that feeds the heads
    (`aesthal.models.AesthalModel.last_shared_layer`:
    `tiny_stage4_conv` for the tiny trunk, `block5_conv3` for vgg16, `Conv_1`
    for mobilenet_v2, `conv5_block3_3_conv` for resnet50, when the heads read
    the deepest tap). Each applied step then:

    1. computes `dL_grad/dw_i` (`gradnorm_weight_gradient`, eq. 2, targets
       constant) with `L_i(0)` the task losses of the first training step;
    2. applies it with the weights' own optimizer (`weight_optimizer`, saved
       with the model; default `Adam(0.025)`, our choice);
    3. renormalises the weights to sum to K (`w <- K w / sum w`); weights are
       first floored at 1e-6 so that they stay positive.

    The weights are non-trainable variables of this layer (the model's
    optimizers never see them): `task_weights`, `initial_losses` and
    `has_initial_losses` (0 before the first step).

    Args:
        alpha: the asymmetry `alpha` >= 0 (1.5 in the paper's NYUv2 runs).
        optimizer: the weights' optimizer (instance, name or serialized config).
    """

    _MIN_WEIGHT = 1e-6

    def __init__(
        self,
        alpha: float = 1.5,
        optimizer: keras.optimizers.Optimizer | str | dict | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not float(alpha) >= 0:
            raise ValueError(f"GradNorm: alpha={alpha} must be >= 0.")
        self.alpha = float(alpha)
        self.weight_optimizer = (
            keras.optimizers.Adam(0.025)
            if optimizer is None
            else keras.optimizers.get(optimizer)
        )

    def build_tasks(self, tasks):
        self.tasks = tuple(tasks)
        count = len(self.tasks)
        # Updated in replica context with the same value on every replica.
        self.task_weights = self.add_weight(
            shape=(count,),
            initializer="ones",
            trainable=False,
            aggregation="only_first_replica",
            name="task_weights",
        )
        self.initial_losses = self.add_weight(
            shape=(count,),
            initializer="zeros",
            trainable=False,
            aggregation="only_first_replica",
            name="initial_losses",
        )
        self.has_initial_losses = self.add_weight(
            shape=(),
            initializer="zeros",
            trainable=False,
            aggregation="only_first_replica",
            name="has_initial_losses",
        )
        if not self.weight_optimizer.built:
            self.weight_optimizer.build([self.task_weights])
        self.built = True

    def weights_by_task(self):
        weights = tf.convert_to_tensor(self.task_weights)
        return {task: weights[i] for i, task in enumerate(self.tasks)}

    def balance(self, task_gradients, task_losses, norm_indices, step):
        weights = tf.convert_to_tensor(self.task_weights)
        norms = tf.stack(
            [
                tf.sqrt(
                    tf.add_n(
                        [
                            tf.reduce_sum(tf.square(task_gradients[t][i]))
                            for i in norm_indices
                        ]
                    )
                )
                for t in self.tasks
            ]
        )
        losses = tf.stack([tf.cast(task_losses[t], tf.float32) for t in self.tasks])
        initial = tf.where(
            tf.convert_to_tensor(self.has_initial_losses) > 0.0,
            tf.convert_to_tensor(self.initial_losses),
            losses,
        )
        gradient, _ = gradnorm_weight_gradient(
            weights, norms, losses, initial, self.alpha
        )
        shared = [
            tf.add_n(
                [weights[k] * task_gradients[t][i] for k, t in enumerate(self.tasks)]
            )
            for i in range(len(task_gradients[self.tasks[0]]))
        ]
        return shared, {"weight_gradient": gradient, "initial_losses": initial}

    def apply_update(self, update):
        (gradient,) = first_replica_only([update["weight_gradient"]])
        self.weight_optimizer.apply([gradient], [self.task_weights])
        weights = tf.maximum(tf.convert_to_tensor(self.task_weights), self._MIN_WEIGHT)
        self.task_weights.assign(len(self.tasks) * weights / tf.reduce_sum(weights))
        self.initial_losses.assign(update["initial_losses"])
        self.has_initial_losses.assign(1.0)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "alpha": self.alpha,
                "optimizer": keras.saving.serialize_keras_object(self.weight_optimizer),
            }
        )
        return config
