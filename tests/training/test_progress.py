"""Issue 30, item 1: `fit`'s progress line fits a terminal line.

`ProgressLine` shows the total loss, each trained task's loss and one metric
per task (training/validation); every log still reaches `History` (and so
`history.json` and TensorBoard). The quickstart-like run through
`experiments/run.py` is measured: its widest stdout line, colour codes
stripped.
"""

from __future__ import annotations

import io
import re
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import REPO_ROOT, background_fixture, fork_run

import aesthal
from aesthal.config import TrainConfig
from aesthal.training import runner
from aesthal.training.progress import ProgressLine, format_line, format_value

QUICKSTART = REPO_ROOT / "experiments" / "configs" / "quickstart.flags"
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _visible_lines(text: str) -> list[str]:
    """Every line a terminal shows: split at line feeds and carriage returns
    (redraws), backspaces and colour codes removed, trailing blanks dropped."""
    text = _ANSI.sub("", text.replace("\b", ""))
    return [line.rstrip() for line in re.split(r"[\r\n]", text)]


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def _model(tasks=aesthal.TASKS) -> aesthal.Trainer:
    keras.utils.set_random_seed(0)
    model = aesthal.build_model(
        aesthal.ModelConfig(
            input_size=(32, 32), side_heads=(("saliency", "stage2", 0.3),)
        )
    )
    return runner.make_trainer(model, TrainConfig(), tasks=tasks)


def _data() -> tf.data.Dataset:
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    targets = {
        "saliency": rng.uniform(0, 1, (4, 32, 32, 1)).astype("float32") ** 4,
        "aesthetics": rng.integers(1, 9, (4, 10)).astype("float32"),
    }
    return tf.data.Dataset.from_tensor_slices((images, targets)).batch(2)


@pytest.fixture(scope="module")
def fitted():
    """Two epochs of two steps with validation, printed as on a terminal."""
    model = _model()
    terminal = _Terminal()
    history = model.fit(
        _data(),
        validation_data=_data(),
        epochs=2,
        callbacks=[ProgressLine(legend="LEGEND", stream=terminal)],
        verbose=1,
    )
    return model, history.history, terminal.getvalue()


def test_the_line_shows_the_headline_values_and_history_keeps_every_log(fitted):
    model, history, text = fitted
    assert model.headline_logs() == {
        "loss": "loss",
        "saliency_loss": "saliency",
        "saliency_cc": "cc",
        "aesthetics_loss": "aesthetics",
        "aesthetics_emd": "emd",
    }
    finals = [
        line for line in text.split("\n") if "ms/step" in line or "s/step" in line
    ]
    assert len(finals) == 2  # one completed line per epoch
    last = _visible_lines(finals[-1])[-1]
    # Each epoch's values, training/validation, as History has them.
    expected = " - ".join(
        f"{short}: {format_value(history[name][-1])}/"
        f"{format_value(history['val_' + name][-1])}"
        for name, short in model.headline_logs().items()
    )
    assert last.startswith("2/2 ━━━━━━━━━━━━━━━━━━━━ ")
    assert last.endswith(" - " + expected), last
    # Everything else is still logged: side head, the other metric, stats.
    for name in ("side0_saliency_loss", "saliency_nss", "val_saliency_nss"):
        assert name in history and name not in text
    assert "saliency_weight" in history
    assert text.startswith("LEGEND\nEpoch 1/2\n")


def test_on_a_terminal_the_line_is_redrawn_and_never_wider_than_its_end(fitted):
    _, _, text = fitted
    assert "\r" in text  # redrawn during the epoch
    widths = [len(line) for line in _visible_lines(text)]
    assert max(widths) <= 160, max(widths)


@pytest.mark.parametrize("verbose", [0, 2])
def test_verbose_two_is_one_line_per_epoch_and_zero_is_silent(verbose):
    model = _model(tasks=("saliency",))
    out = _Terminal()
    model.fit(_data(), epochs=2, callbacks=[ProgressLine(stream=out)], verbose=verbose)
    if verbose == 0:
        assert out.getvalue() == ""
        return
    lines = out.getvalue().splitlines()
    assert lines[0::2] == ["Epoch 1/2", "Epoch 2/2"]
    assert "\r" not in out.getvalue() and "━" not in out.getvalue()
    assert re.fullmatch(
        r"2/2 - \d+s - \d+m?s/step - loss: \S+ - saliency: \S+ - cc: \S+", lines[1]
    ), lines[1]


def test_format_line_at_the_quickstarts_step_count():
    line = format_line(
        200,
        200,
        12.0,
        0.06,
        [("loss", 4.7704, 1.7205), ("saliency", 3.6321, 1.2939), ("cc", 0.09238, None)],
    )
    assert line == (
        "200/200 ━━━━━━━━━━━━━━━━━━━━ 12s 60ms/step - loss: 4.77/1.72 - "
        "saliency: 3.632/1.294 - cc: 0.09238"
    )
    during = format_line(50, 200, 9.0, 0.06, [("loss", 4.7704, None)])
    assert during == " 50/200 ━━━━━                9s 60ms/step - loss: 4.77"


@background_fixture
def quickstart_output(tmp_path):
    """The quickstart's flags on the tiny data at 32x48, 2 epochs of 3 steps
    (conftest.background_fixture): `(returncode, stdout, stderr)`."""
    result = fork_run(
        [
            sys.executable,
            REPO_ROOT / "experiments" / "run.py",
            f"--flagfile={QUICKSTART}",
            "--dataset=synthetic_scenes/tiny",
            f"--data_dir={tmp_path / 'tfds'}",
            f"--output_dir={tmp_path / 'out'}",
            "--input_height=32",
            "--input_width=48",
            "--batch_size=4",
            "--epochs=2",
            "--steps_per_epoch=3",
            "--validation_steps=1",
            "--noexport",
            "--noevaluate",
        ],
        timeout=600,
    )
    return result.returncode, result.stdout, result.stderr


@pytest.mark.slow
def test_the_quickstarts_widest_progress_line_fits(quickstart_output):
    returncode, stdout, stderr = quickstart_output
    assert returncode == 0, stderr[-3000:]
    lines = _visible_lines(stdout)
    # What fit prints: from its legend on (TFDS prints before, building the
    # data; the results table after, without --noevaluate).
    lines = lines[next(i for i, line in enumerate(lines) if "Shown:" in line) :]
    progress = [line for line in lines if "/step - loss: " in line]
    assert len(progress) == 2, stdout
    widest = max(len(line) for line in lines)
    # Was 396 with Keras' bar (every log, twice); the goal was <= 240.
    assert widest <= 240, widest
    # And one line of <= 160 on the default run: its 200 steps write
    # "200/200" where this run writes "3/3".
    assert widest + len("200/200") - len("3/3") <= 160, max(lines, key=len)
