"""`fit`'s progress line, short enough for one terminal line.

Keras' progress bar shows every log: with two tasks, a side head and three
metrics that is 14 values and ~400 characters at the end of an epoch (with
validation). `ProgressLine` shows the total loss, each trained task's loss
and one metric per task (`Trainer.headline_logs`), each as
`training/validation` once the epoch is validated:

    Epoch 2/8
    200/200 ━━━━━━━━━━━━━━━━━━━━ 12s 60ms/step - loss: 4.77/1.721 - saliency: ...

Every log still reaches the other callbacks: `History`, TensorBoard and the
runner's `history.json` (`callbacks.RunRecord`) keep them all.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping

import keras

BAR_WIDTH = 20
# Seconds between two redraws of the line during an epoch (as Keras').
_INTERVAL_S = 0.05


def format_value(value: float) -> str:
    """Four significant digits: `4.77`, `0.04521`, `1234`, `1.235e+04`."""
    return f"{float(value):.4g}"


def format_step_time(seconds: float) -> str:
    """`60ms/step`, as Keras writes a step's time."""
    if seconds >= 1:
        return f"{seconds:.0f}s/step"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.0f}ms/step"
    return f"{seconds * 1e6:.0f}us/step"


def format_duration(seconds: float) -> str:
    """`5s`, `2:05`, `1:02:05`, as Keras writes elapsed and remaining time."""
    whole = int(max(0.0, seconds))
    hours, minutes, rest = whole // 3600, whole % 3600 // 60, whole % 60
    if whole > 3600:
        return f"{hours}:{minutes:02d}:{rest:02d}"
    if whole > 60:
        return f"{minutes}:{rest:02d}"
    return f"{max(0.0, seconds):.0f}s"


def format_line(
    seen: int,
    target: int | None,
    seconds: float,
    step_s: float,
    values: list[tuple[str, float, float | None]],
    bar: bool = True,
) -> str:
    """One progress line, without colour codes.

    Args:
        seen: steps done this epoch.
        target: steps in the epoch (None: unknown).
        seconds: seconds since the epoch began (at its end) or still to go.
        step_s: seconds per step.
        values: `(short name, training value, validation value or None)`.
        bar: draw the bar (`verbose=1`); without it, `verbose=2`'s line.

    Returns:
        e.g. `"3/3 ━━━━━━━━━━━━━━━━━━━━ 5s 679ms/step - loss: 4.77/1.721"`.
    """
    if target:
        count = f"{seen:{len(str(target))}d}/{target}"
        done = min(BAR_WIDTH, int(BAR_WIDTH * seen / target))
        drawn = "━" * done + " " * (BAR_WIDTH - done) if bar else ""
    else:
        count, drawn = f"{seen}/Unknown", ""
    parts = [count]
    if drawn:
        parts.append(drawn)
    parts.append(format_duration(seconds))
    parts.append(format_step_time(step_s))
    head = " ".join(parts) if bar else " - ".join(parts)
    shown = [
        f"{name}: {format_value(train)}"
        + ("" if validation is None else f"/{format_value(validation)}")
        for name, train, validation in values
    ]
    return " - ".join([head, *shown])


class ProgressLine(keras.callbacks.ProgbarLogger):
    """`fit`'s progress output with the headline logs only (see the module).

    A `ProgbarLogger`, so that `fit` adds no progress bar of its own when it
    is in the callbacks. `verbose=1`: on a terminal the line is redrawn
    during the epoch (training values) and completed at its end (with
    validation values); written to a file or a pipe, only each epoch's last
    line is written. `verbose=2`: one line per epoch, without the bar.
    `verbose=0`: nothing. Validation inside `fit` is silent.

    Args:
        names: `{log name: short name}` of the values shown, in order; None:
            the model's `headline_logs()` (a `Trainer`), else `loss`.
        legend: a line printed once before the first epoch, or None.
        stream: where to write (None: `sys.stdout` at each write).
    """

    def __init__(
        self,
        names: Mapping[str, str] | None = None,
        legend: str | None = None,
        stream=None,
    ):
        super().__init__()
        self.names = None if names is None else dict(names)
        self.legend = legend
        self.stream = stream
        self._start = 0.0
        self._after_first_step = None
        self._drawn_width = 0
        self._last_draw = 0.0

    def _out(self):
        return self.stream if self.stream is not None else sys.stdout

    def _write(self, text: str) -> None:
        out = self._out()
        out.write(text)
        out.flush()

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        if self.names is None:
            headline = getattr(self.model, "headline_logs", None)
            self.names = headline() if headline is not None else {"loss": "loss"}
        if self.verbose and self.legend:
            self._write(self.legend + "\n")

    def on_epoch_begin(self, epoch, logs=None):
        self.seen = 0
        self._start = time.time()
        self._after_first_step = None
        self._drawn_width = 0
        self._last_draw = 0.0
        if self.verbose and self.epochs > 1:
            self._write(f"Epoch {epoch + 1}/{self.epochs}\n")

    def on_train_batch_end(self, batch, logs=None):
        self.seen = batch + 1
        if self._after_first_step is None:
            self._after_first_step = (time.time(), self.seen)
        out = self._out()
        if self.verbose != 1 or not (hasattr(out, "isatty") and out.isatty()):
            return
        now = time.time()
        if now - self._last_draw < _INTERVAL_S and self.seen != self.target:
            return
        self._last_draw = now
        self._draw(logs or {}, final=False)

    def on_epoch_end(self, epoch, logs=None):
        if self.verbose:
            self._draw(logs or {}, final=True)

    # fit's validation and predict: silent (evaluate outside fit adds
    # Keras' own progress bar: this callback is only given to fit).
    def on_test_begin(self, logs=None):
        pass

    def on_test_batch_end(self, batch, logs=None):
        pass

    def on_test_end(self, logs=None):
        pass

    def on_predict_begin(self, logs=None):
        pass

    def on_predict_batch_end(self, batch, logs=None):
        pass

    def on_predict_end(self, logs=None):
        pass

    def line(self, logs: Mapping[str, float], final: bool = True) -> str:
        """The line for `logs` at the current step (what `_draw` writes):
        with the epoch's elapsed time when `final`, else the time to go."""
        now = time.time()
        elapsed = now - self._start
        # Seconds per step after the first one (which also traces the step).
        step_s = elapsed / max(self.seen, 1)
        if self._after_first_step is not None:
            first_time, first_seen = self._after_first_step
            if self.seen > first_seen:
                step_s = (now - first_time) / (self.seen - first_seen)
        values = [
            (short, float(logs[name]), _optional(logs.get(f"val_{name}")))
            for name, short in self.names.items()
            if name in logs
        ]
        to_go = step_s * (self.target - self.seen) if self.target else elapsed
        return format_line(
            self.seen,
            self.target,
            elapsed if final else to_go,
            step_s,
            values,
            bar=self.verbose == 1,
        )

    def _draw(self, logs: Mapping[str, float], final: bool) -> None:
        text = self.line(logs, final)
        padding = " " * max(0, self._drawn_width - len(text))
        out = self._out()
        redraw = hasattr(out, "isatty") and out.isatty() and self._drawn_width
        self._write(("\r" if redraw else "") + text + padding + ("\n" if final else ""))
        self._drawn_width = 0 if final else len(text)


def _optional(value) -> float | None:
    return None if value is None else float(value)
