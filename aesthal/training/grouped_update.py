"""The pieces of one grouped training step: task losses, the guard, the updates.

`aesthal.training.Trainer.train_step` composes them (see its module for the
whole recipe). Each is a function of what it reads, so a reader can follow a
step without the trainer's other state:

- `task_losses`: per task, the masked mean of its head's loss plus its side
  heads' (the share of the *global*-batch mean under `tf.distribute`);
- `balanced_gradients`: one backward pass per task for a gradient-level
  strategy (`aesthal.training.balancing.gradient_level`);
- `nonfinite_flags`: the NaN/Inf guard's per-group flags, agreed by every
  replica;
- `apply_grouped_gradients`: each group's gradients through its own
  optimizer, or nothing at all when the guard refuses the step.
"""

from __future__ import annotations

from collections.abc import Mapping

import tensorflow as tf

from aesthal import losses as losses_lib
from aesthal.config import GROUPS, TASKS
from aesthal.training.balancing import first_replica_only


def task_losses(
    network,
    saliency_loss: losses_lib.SaliencyLoss,
    targets: Mapping[str, tf.Tensor],
    masks: Mapping[str, tf.Tensor],
    outputs: Mapping[str, tf.Tensor],
    side_outputs: list,
    num_replicas: int,
) -> tuple[dict[str, tf.Tensor], dict[str, tf.Tensor]]:
    """Per-replica task losses (share of the global-batch mean) and log values.

    Args:
        network: the `AesthalModel` (its `config.side_heads`).
        saliency_loss: the saliency head's loss.
        targets, masks: `{task: ...}` as `batch_checks.unpack_batch` gives them.
        outputs, side_outputs: `network.forward(...)`.
        num_replicas: replicas in sync.

    Returns:
        `(task_losses, log_losses)`: `{task: scalar}` to combine, and
        `{tracker_name: scalar}` at the global scale (for logging).
    """
    context = tf.distribute.get_replica_context()

    def global_mean(per_example, task):
        local_sum, local_count = losses_lib.masked_sum_and_count(
            per_example, masks[task]
        )
        count = local_count
        if context is not None and num_replicas > 1:
            count = context.all_reduce(tf.distribute.ReduceOp.SUM, local_count)
        return tf.math.divide_no_nan(local_sum, count)

    per_example = {
        "saliency": saliency_loss(targets["saliency"], outputs["saliency_log_density"]),
        "aesthetics": losses_lib.squared_emd(
            targets["aesthetics"], outputs["aesthetics"]
        ),
    }
    losses = {t: global_mean(per_example[t], t) for t in TASKS}
    logs = {f"{t}_loss": losses[t] * num_replicas for t in TASKS}
    for i, ((task, _, weight), side) in enumerate(
        zip(network.config.side_heads, side_outputs, strict=True)
    ):
        if task == "saliency":
            side_loss = saliency_loss(targets["saliency"], side)
        else:
            side_loss = losses_lib.squared_emd(targets["aesthetics"], side)
        side_loss = global_mean(side_loss, task)
        logs[f"side{i}_{task}_loss"] = side_loss * num_replicas
        losses[task] = losses[task] + weight * side_loss
    return losses, logs


def nonfinite_flags(
    losses: Mapping[str, tf.Tensor],
    grads_by_group: Mapping[str, list],
    num_replicas: int,
) -> dict[str, tf.Tensor]:
    """`{group: float32 scalar}`, 1.0 where a loss or gradient is NaN/Inf.

    A task's flag covers its loss and its head group's gradients; "shared"
    covers the trunk's gradients. Under `tf.distribute` the flags are summed
    over replicas (then clipped to 1), so every replica takes the same
    branch of the guard.
    """

    def bad(tensors) -> tf.Tensor:
        finite = [tf.reduce_all(tf.math.is_finite(t)) for t in tensors]
        if not finite:
            return tf.constant(0.0)
        return 1.0 - tf.cast(tf.reduce_all(tf.stack(finite)), tf.float32)

    flags = {}
    for group in GROUPS:
        tensors = [g for g in grads_by_group[group] if g is not None]
        if group in losses:
            tensors.append(losses[group])
        flags[group] = bad(tensors)
    context = tf.distribute.get_replica_context()
    if context is not None and num_replicas > 1:
        flags = context.all_reduce(tf.distribute.ReduceOp.SUM, flags)
    return {g: tf.minimum(f, 1.0) for g, f in flags.items()}


def apply_grouped_gradients(
    optimizers: Mapping[str, object],
    groups: Mapping[str, list],
    grads_by_group: Mapping[str, list],
    finite=None,
    loss_weighting=None,
    balancing_update: Mapping[str, tf.Tensor] | None = None,
) -> None:
    """Applies each group's gradients with its own optimizer, if `finite`.

    The single place where updates happen. When `finite` (a bool scalar,
    equal on every replica) is False, no optimizer is called at all, so no
    variable, moment or iteration count changes (a `tf.cond`; under a
    strategy that needs `merge_call`, the cond runs in cross-replica
    context, as `keras.optimizers.LossScaleOptimizer` does). A non-empty
    `balancing_update` (what a gradient-level strategy's `balance`
    returned) is applied by `loss_weighting` under the same condition.

    Args:
        optimizers: `{group: optimizer}`.
        groups: `{group: [variables]}`.
        grads_by_group: `{group: [gradient per variable]}`.
        finite: None (apply), or a bool scalar.
        loss_weighting: the strategy, for `balancing_update`.
        balancing_update: `{name: tensor}`, or None.
    """
    balancing_update = balancing_update or {}

    def apply_all(grads_by_group, balancing_update):
        for group in GROUPS:
            variables = groups[group]
            if variables:
                optimizers[group].apply_gradients(
                    zip(grads_by_group[group], variables, strict=True)
                )
        if balancing_update:
            loss_weighting.apply_update(balancing_update)

    if finite is None:
        apply_all(grads_by_group, balancing_update)
        return
    if tf.__internal__.distribute.strategy_supports_no_merge_call():
        tf.cond(
            finite,
            lambda: apply_all(grads_by_group, balancing_update),
            lambda: None,
        )
        return

    def cross_replica(distribution, grads_by_group, finite, balancing_update):
        finite = distribution.experimental_local_results(finite)[0]

        def apply_fn():
            distribution.extended.call_for_each_replica(
                apply_all, args=(grads_by_group, balancing_update)
            )

        tf.cond(finite, apply_fn, lambda: None)

    tf.distribute.get_replica_context().merge_call(
        cross_replica, args=(grads_by_group, finite, balancing_update)
    )


def balanced_gradients(
    tape: tf.GradientTape,
    losses: Mapping[str, tf.Tensor],
    groups: Mapping[str, list],
    loss_weighting,
    network,
    step: tf.Tensor,
    num_replicas: int,
):
    """Gradients by group for a gradient-level strategy, and its update.

    One backward pass per task (`tape` is persistent) gives the task's
    gradient for the shared group and for its own head group. Under
    `tf.distribute` the shared ones and the task losses are summed across
    replicas first (each replica's `L_t` is its share of the global-batch
    mean, so the sums are the single-device values); the strategy's
    `balance` then combines them, and only the first replica passes the
    result on (`first_replica_only`), so that the shared optimizer's own
    all-reduce returns it unchanged. Each task group `g` gets
    `sum_t w_t * dL_t/dtheta_g`, reduced by its optimizer as usual: with
    hard sharing only its own task's term is non-zero (`w_g dL_g/dhead_g`);
    with cross-stitch sharing a task's trunk also feeds the other task
    through the units.

    GradNorm's norms are taken at the network's `last_shared_layer()`.

    Args:
        tape: the persistent tape of the forward pass and the losses.
        losses: `{task: scalar}` from `task_losses`.
        groups: `{group: [variables]}` (the trainer's `variable_groups()`).
        loss_weighting: a `GradientBalancing` strategy.
        network: the `AesthalModel`.
        step: int64 scalar, the training steps run before this one.
        num_replicas: replicas in sync.

    Returns:
        `(grads_by_group, update)`: `{group: [gradient per variable]}` and
        the strategy's update for `apply_update`.
    """
    shared = groups["shared"]
    weights = {
        t: tf.stop_gradient(w) for t, w in loss_weighting.weights_by_task().items()
    }
    grads_by_group, task_shared = {t: None for t in TASKS}, {}
    targets = shared + groups["saliency"] + groups["aesthetics"]
    for task in TASKS:
        grads = tape.gradient(losses[task], targets)
        # Unconnected (e.g. the other task's head): zeros. (Not
        # `UnconnectedGradients.ZERO`, which fails on Keras variables.)
        grads = [
            tf.zeros(v.shape, v.dtype) if g is None else g
            for g, v in zip(grads, targets, strict=True)
        ]
        task_shared[task] = grads[: len(shared)]
        start = len(shared)
        for group in ("saliency", "aesthetics"):
            part = grads[start : start + len(groups[group])]
            start += len(groups[group])
            if group != task and network.config.task_sharing.mode == "hard":
                continue  # unconnected: zeros
            part = [weights[task] * g for g in part]
            previous = grads_by_group[group]
            grads_by_group[group] = (
                part
                if previous is None
                else [p + g for p, g in zip(previous, part, strict=True)]
            )
    losses = {t: tf.cast(losses[t], tf.float32) for t in TASKS}
    context = tf.distribute.get_replica_context()
    if context is not None and num_replicas > 1:
        task_shared, losses = context.all_reduce(
            tf.distribute.ReduceOp.SUM, (task_shared, losses)
        )
    norm_layer = {id(v) for v in network.last_shared_layer().trainable_variables}
    norm_indices = [i for i, v in enumerate(shared) if id(v) in norm_layer]
    combined, update = loss_weighting.balance(task_shared, losses, norm_indices, step)
    grads_by_group["shared"] = first_replica_only(combined)
    return grads_by_group, update
