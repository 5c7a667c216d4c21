"""The input pipeline: TFDS examples to the `(images, targets, sample_weights)` of fit.

from aesthal import data
ds = data.make_dataset(
    data.SourceSpec("synthetic_scenes", data_dir=...),
    image_size=(96, 128), batch_size=16,
)
"""

from aesthal.data.pipeline import (
    EvalExample,
    SourceSpec,
    iterate_eval_examples,
    load_source,
    make_dataset,
)
from aesthal.data.preprocess import (
    flip_example,
    resize_example,
    standardize_example,
    to_model_inputs,
)

__all__ = [
    "EvalExample",
    "SourceSpec",
    "flip_example",
    "iterate_eval_examples",
    "load_source",
    "make_dataset",
    "resize_example",
    "standardize_example",
    "to_model_inputs",
]
