"""Pluggable strategies that combine per-task losses into one training loss.

A strategy is a `keras.layers.Layer` (so its variables are tracked, trained and
saved with the model) with the contract

    total = sum_t weight_t * L_t + regularizer

where `weights()` gives `{task: weight_t}` (scalar tensors, possibly functions
of trainable variables) and `regularizer()` a scalar tensor. Keeping the total
linear in the task losses is what lets `train_step` split it exactly across
replicas (the regularizer is divided by the number of replicas). Each variable a
strategy creates belongs to one task, reported by `variables_for_task(task)`,
so it is updated by that task's optimizer.

New strategies subclass `LossWeighting`, create variables in `build_tasks` and
register themselves with `@keras.saving.register_keras_serializable`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import keras
import tensorflow as tf

from aesthal.config import TASKS


class LossWeighting(keras.layers.Layer):
    """Base class: fixed weight 1 for each task, no regularizer."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.tasks: tuple[str, ...] = ()

    def build_tasks(self, tasks: Sequence[str]) -> None:
        """Creates the strategy's state for `tasks` (called once by `compile`)."""
        self.tasks = tuple(tasks)
        self.built = True

    def build(self, input_shape=None):
        self.build_tasks(TASKS)

    def weights_by_task(self) -> dict[str, tf.Tensor]:
        """Returns `{task: float32 scalar}`, the current weight of each task."""
        return {task: tf.constant(1.0) for task in self.tasks}

    def regularizer(self) -> tf.Tensor:
        """Returns the float32 scalar added to the weighted sum of task losses."""
        return tf.constant(0.0)

    def variables_for_task(self, task: str) -> list:
        """The trainable variables owned by `task` (updated by its optimizer)."""
        return []

    def combine(
        self, task_losses: Mapping[str, tf.Tensor], num_replicas: int = 1
    ) -> tf.Tensor:
        """`sum_t w_t * L_t + regularizer / num_replicas` (float32 scalar).

        Args:
            task_losses: `{task: float32 scalar}`; under a distribution strategy,
                each replica's share of the global-batch loss.
            num_replicas: replicas whose totals are summed by the gradient
                all-reduce.
        """
        weights = self.weights_by_task()
        total = tf.add_n(
            [weights[t] * tf.cast(task_losses[t], tf.float32) for t in self.tasks]
        )
        return total + self.regularizer() / float(num_replicas)


@keras.saving.register_keras_serializable(package="aesthal")
class FixedWeighting(LossWeighting):
    """`total = sum_t w_t * L_t` with constant user weights (default 1).

    Args:
        weights: `{task: weight}`, weights >= 0; missing tasks get 1.0.
    """

    def __init__(self, weights: Mapping[str, float] | None = None, **kwargs):
        super().__init__(**kwargs)
        weights = dict(weights or {})
        unknown = set(weights) - set(TASKS)
        if unknown:
            raise ValueError(
                f"loss_weights: unknown tasks {sorted(unknown)}; expected a subset "
                f"of {TASKS}."
            )
        for task, value in weights.items():
            if not float(value) >= 0:
                raise ValueError(f"loss_weights[{task!r}]={value} must be >= 0.")
        self.task_weight_values = {t: float(weights.get(t, 1.0)) for t in TASKS}

    def weights_by_task(self):
        return {t: tf.constant(self.task_weight_values[t]) for t in self.tasks}

    def get_config(self):
        config = super().get_config()
        config.update({"weights": dict(self.task_weight_values)})
        return config


@keras.saving.register_keras_serializable(package="aesthal")
class UncertaintyWeighting(LossWeighting):
    """Homoscedastic-uncertainty weighting (Kendall, Gal & Cipolla, CVPR 2018).

    One learned log-variance `s_t = log(sigma_t**2)` per task, and

        total = sum_t exp(-s_t) * L_t + s_t

    i.e. `L_t / sigma_t**2 + log(sigma_t**2)`: twice the paper's regression form
    (its eq. 7, `L_t / (2 sigma_t**2) + log sigma_t`), the variant most
    re-implementations use. Learning `s_t` rather than `sigma_t` keeps the
    weights positive and the optimisation stable. The logged weight of a task is
    `exp(-s_t)`. Each `s_t` is a scalar float32 variable owned by task `t`.

    Args:
        initial_log_variance: starting value of every `s_t` (0 = weight 1).
    """

    def __init__(self, initial_log_variance: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.initial_log_variance = float(initial_log_variance)
        self.log_variances: dict[str, keras.Variable] = {}

    def build_tasks(self, tasks):
        self.tasks = tuple(tasks)
        self.log_variances = {
            task: self.add_weight(
                shape=(),
                initializer=keras.initializers.Constant(self.initial_log_variance),
                trainable=True,
                dtype="float32",
                name=f"{task}_log_variance",
            )
            for task in self.tasks
        }
        self.built = True

    def weights_by_task(self):
        return {
            t: tf.exp(-tf.convert_to_tensor(self.log_variances[t])) for t in self.tasks
        }

    def regularizer(self):
        return tf.add_n(
            [tf.convert_to_tensor(self.log_variances[t]) for t in self.tasks]
        )

    def variables_for_task(self, task):
        return [self.log_variances[task]] if task in self.log_variances else []

    def get_config(self):
        config = super().get_config()
        config.update({"initial_log_variance": self.initial_log_variance})
        return config


_STRATEGIES = {"fixed": FixedWeighting, "uncertainty": UncertaintyWeighting}


def get_loss_weighting(
    identifier: str | LossWeighting, loss_weights: Mapping[str, float] | None = None
) -> LossWeighting:
    """Returns a strategy from a name (`"fixed"`, `"uncertainty"`) or instance.

    Args:
        identifier: a strategy name or a `LossWeighting` instance.
        loss_weights: `{task: weight}` for `"fixed"` only.

    Raises:
        ValueError: unknown name, or `loss_weights` given with another strategy.
    """
    if isinstance(identifier, LossWeighting):
        if loss_weights:
            raise ValueError(
                "loss_weights is only used with loss_weighting='fixed'; pass the "
                "weights to the strategy instance instead."
            )
        return identifier
    if identifier not in _STRATEGIES:
        raise ValueError(
            f"loss_weighting={identifier!r} is unknown; expected one of "
            f"{sorted(_STRATEGIES)} or a LossWeighting instance."
        )
    if identifier == "fixed":
        return FixedWeighting(loss_weights, name="loss_weighting")
    if loss_weights:
        raise ValueError(
            f"loss_weights={dict(loss_weights)} cannot be used with "
            f"loss_weighting={identifier!r}, which learns its weights."
        )
    return _STRATEGIES[identifier](name="loss_weighting")
