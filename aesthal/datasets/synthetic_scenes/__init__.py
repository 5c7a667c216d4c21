"""synthetic_scenes: the generated default data set (no download)."""
