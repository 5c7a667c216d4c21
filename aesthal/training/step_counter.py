"""`StepCounter`: the training steps a trainer has run, saved with its state."""

from __future__ import annotations

import keras


@keras.saving.register_keras_serializable(package="aesthal")
class StepCounter(keras.layers.Layer):
    """Counts training steps run (applied or refused by the NaN/Inf guard).

    `aesthal.training.Trainer` holds one as `step_counter`, outside its layer
    tracking (so it is not among `trainer.weights`), and increments it once
    per `train_step`. It counts independently of any optimizer's
    `iterations` (which stop when a group has no variables, e.g. a frozen
    trunk), and is saved with the trainer's state (`BackupAndRestore`), so a
    resumed run goes on counting. A file written before the counter existed
    has no entry for it: the count then starts at 0.

    Attributes:
        count: int64 scalar variable.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        # Incremented in replica context by every replica: keep the first's.
        self.count = self.add_weight(
            shape=(),
            dtype="int64",
            initializer="zeros",
            trainable=False,
            aggregation="only_first_replica",
            name="count",
        )
        self.built = True

    def increment(self) -> None:
        """Adds one step."""
        self.count.assign_add(1)

    def load_own_variables(self, store) -> None:
        if len(store.keys()) == 0:
            return  # a file from before the counter: count from 0
        super().load_own_variables(store)
