"""The interface every task-balancing strategy implements, and their registry.

A strategy is a `keras.layers.Layer` (so its variables are tracked, trained and
saved with the trainer's state) with the contract

    total = sum_t weight_t * L_t + regularizer

where `weights_by_task()` gives `{task: weight_t}` (scalar tensors, possibly
functions of trainable variables) and `regularizer()` a scalar tensor. Keeping
the total linear in the task losses is what lets the train step split it
exactly across replicas (the regularizer is divided by the number of
replicas). Each variable a strategy creates belongs to one task, reported by
`variables_for_task(task)`, so it is updated by that task's optimizer.

Strategies that act on the gradients instead (`acts_on_gradients`) get one
gradient per task for the shared variables and return the shared group's
(`aesthal.training.balancing.gradient_level.GradientBalancing.balance`).

Every strategy registers itself by name with `@register(name)` (and with
Keras' `register_keras_serializable`); `get_loss_weighting` makes one by
name. The package imports every strategy module, so the registry is full
whenever this module is reachable: the names are
`aesthal.config.LOSS_WEIGHTINGS`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import keras
import tensorflow as tf

from aesthal.config import TASKS

#: Strategy name -> class, filled by `register`.
STRATEGIES: dict[str, type[LossWeighting]] = {}


def register(name: str) -> Callable[[type], type]:
    """Class decorator: makes a `LossWeighting` subclass available by `name`."""

    def add(cls: type) -> type:
        if name in STRATEGIES:
            raise ValueError(f"loss weighting {name!r} is registered twice.")
        STRATEGIES[name] = cls
        return cls

    return add


class LossWeighting(keras.layers.Layer):
    """Base class: fixed weight 1 for each task, no regularizer.

    Class attributes read by `aesthal.training.Trainer`:
        acts_on_gradients: False here; True for
            `aesthal.training.balancing.gradient_level.GradientBalancing`,
            whose `train_step` takes one gradient per task for the shared group.
        uses_epoch_losses: True when `end_epoch` must be called after every
            training epoch (`Trainer.fit` then adds the callback that does).
    """

    acts_on_gradients = False
    uses_epoch_losses = False

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

    def end_epoch(self, epoch_losses: Mapping[str, float]) -> None:
        """Called after each training epoch when `uses_epoch_losses` (no-op here).

        Args:
            epoch_losses: `{task: mean training loss of the epoch}` (the task's
                loss with its side heads', as `combine` receives it, at the
                global scale).
        """

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


def get_loss_weighting(
    identifier: str | LossWeighting, loss_weights: Mapping[str, float] | None = None
) -> LossWeighting:
    """Returns a strategy from a name or an instance.

    Names (`STRATEGIES`, which are `aesthal.config.LOSS_WEIGHTINGS`):
    `"fixed"`, `"uncertainty"`, `"dwa"` (`DynamicWeightAverage`), and the
    gradient-level `"gradnorm"`, `"pcgrad"`, `"cagrad"`, each with its
    published defaults.

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
    if identifier not in STRATEGIES:
        raise ValueError(
            f"loss_weighting={identifier!r} is unknown; expected one of "
            f"{sorted(STRATEGIES)} or a LossWeighting instance."
        )
    if identifier == "fixed":
        return STRATEGIES["fixed"](loss_weights, name="loss_weighting")
    if loss_weights:
        raise ValueError(
            f"loss_weights={dict(loss_weights)} cannot be used with "
            f"loss_weighting={identifier!r}, which sets the task weights itself."
        )
    return STRATEGIES[identifier](name="loss_weighting")
