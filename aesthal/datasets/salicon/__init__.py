"""The `salicon` TFDS builder."""
