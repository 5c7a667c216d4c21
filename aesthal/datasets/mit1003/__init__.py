"""The `mit1003` TFDS builder."""
