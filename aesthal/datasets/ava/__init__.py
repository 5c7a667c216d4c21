"""The `ava` TFDS builder."""
