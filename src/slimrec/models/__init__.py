"""Recommendation models; they hold embedding tables without knowing the method."""

from slimrec.models.base import RetrievalModel
from slimrec.models.mf import MF

__all__ = ["MF", "RetrievalModel"]
