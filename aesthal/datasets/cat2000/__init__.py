"""The `cat2000` TFDS builder."""
