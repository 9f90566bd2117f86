"""dgm-harness: an auto-grader for a deep generative models course."""

__version__ = "0.1.0"
