"""The `ava` TFDS builder (work in progress: registers the name only)."""

import tensorflow_datasets as tfds


class Builder(tfds.core.GeneratorBasedBuilder):
    """`ava`: being written (issue 3); generation raises until then."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(features=tfds.features.FeaturesDict({}))

    def _split_generators(self, dl_manager):
        raise NotImplementedError("ava builder not written yet (issue 3)")

    def _generate_examples(self):
        raise NotImplementedError("ava builder not written yet (issue 3)")
