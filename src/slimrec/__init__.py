"""SlimRec: memory-efficient recommender systems."""

__version__ = "0.1.0"
