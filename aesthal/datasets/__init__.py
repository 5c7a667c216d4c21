"""TFDS builders. Importing this package registers every builder with TFDS.

Example: `import aesthal.datasets`, then
`tfds.load("synthetic_scenes", split="train", data_dir=...)`.
"""

from aesthal.datasets.ava import ava_dataset_builder  # noqa: F401
from aesthal.datasets.cat2000 import cat2000_dataset_builder  # noqa: F401
from aesthal.datasets.mit1003 import mit1003_dataset_builder  # noqa: F401
from aesthal.datasets.osie import osie_dataset_builder  # noqa: F401
from aesthal.datasets.salicon import salicon_dataset_builder  # noqa: F401
from aesthal.datasets.synthetic_scenes import (  # noqa: F401
    synthetic_scenes_dataset_builder,
)
