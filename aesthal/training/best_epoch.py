"""Keep the weights of the best validation epoch, across resumes.

Early stopping by validation loss is how DeepGaze II and most saliency models
pick their final weights: a small readout on frozen features overfits a few
hundred training images within a few epochs, and where it starts to do so
depends on the seed. Keras' `EarlyStopping(restore_best_weights=True)` keeps
the best weights in memory only, so a run resumed after a kill (our
`BackupAndRestore`) would forget the epochs before the kill; this callback
writes them to disk instead.
"""

from __future__ import annotations

import json
import logging
import math
import os
import pathlib

import keras

_LOG = logging.getLogger("aesthal")

WEIGHTS_FILE = "best.weights.h5"
RECORD_FILE = "best.json"


class RestoreBestEpoch(keras.callbacks.Callback):
    """Saves the network's weights whenever `monitor` improves; restores them
    at the end.

    The weights are those of the trainer's network (`Trainer.network`; a
    model without one: its own), so that `best.weights.h5` loads into an
    `AesthalModel`.

    Files in `folder`: `best.weights.h5` (the weights) and `best.json`
    (`{"monitor", "value", "epoch"}`, epoch 1-based), each written under
    another name and renamed (a kill leaves the previous file whole), the
    weights first, so that the record never names weights that are not there. A run
    resumed in the same folder reads `best.json` first and keeps comparing
    against it. Non-finite values never count as an improvement.

    Args:
        folder: where the two files go (created).
        monitor: a key of the epoch logs, lower is better (`"val_loss"`).
    """

    def __init__(self, folder: str | os.PathLike, monitor: str = "val_loss"):
        super().__init__()
        self.folder = pathlib.Path(folder)
        self.monitor = monitor
        self.best: float = math.inf
        self.best_epoch: int | None = None

    def _network(self) -> keras.Model:
        return getattr(self.model, "network", self.model)

    @property
    def weights_path(self) -> pathlib.Path:
        return self.folder / WEIGHTS_FILE

    def on_train_begin(self, logs=None):
        record = self.folder / RECORD_FILE
        if record.is_file() and self.weights_path.is_file():
            saved = json.loads(record.read_text())
            if saved.get("monitor") == self.monitor:
                self.best, self.best_epoch = float(saved["value"]), saved["epoch"]

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None:
            raise ValueError(
                f"restore_best_epoch: the epoch logs have no {self.monitor!r} "
                f"(they have {sorted(logs or {})}); it needs a validation split "
                "(--validation_split)."
            )
        value = float(value)
        if not (math.isfinite(value) and value < self.best):
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        # Written whole or not at all: a kill while saving keeps the last best.
        writing = self.folder / ("writing-" + WEIGHTS_FILE)
        self._network().save_weights(writing, overwrite=True)
        os.replace(writing, self.weights_path)
        self.best, self.best_epoch = value, epoch + 1
        record = {"monitor": self.monitor, "value": value, "epoch": epoch + 1}
        temporary = self.folder / (RECORD_FILE + ".tmp")
        temporary.write_text(json.dumps(record) + "\n")
        os.replace(temporary, self.folder / RECORD_FILE)

    def on_train_end(self, logs=None):
        if self.best_epoch is None:
            _LOG.warning(
                "restore_best_epoch: no finite %s was seen; keeping the last "
                "weights.",
                self.monitor,
            )
            return
        self._network().load_weights(self.weights_path)
        _LOG.info(
            "restore_best_epoch: restored epoch %d (%s %.4f).",
            self.best_epoch,
            self.monitor,
            self.best,
        )
