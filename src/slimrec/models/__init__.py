"""Recommendation models; they hold embedding tables without knowing the method."""

from slimrec.models.base import RetrievalModel
from slimrec.models.mf import MF

MODEL_CLASSES: dict[str, type[RetrievalModel]] = {"MF": MF}

__all__ = ["MF", "MODEL_CLASSES", "RetrievalModel"]
