"""The `osie` TFDS builder."""
