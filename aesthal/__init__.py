"""aesthal: saliency prediction with a multi-task CNN that also learns aesthetics."""

__version__ = "0.1.0"
