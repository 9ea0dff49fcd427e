"""Recommendation models; they hold embedding tables without knowing the method."""

from slimrec.models.base import RetrievalModel
from slimrec.models.lightgcn import LightGCN
from slimrec.models.mf import MF
from slimrec.models.neumf import NeuMF

MODEL_CLASSES: dict[str, type[RetrievalModel]] = {"MF": MF, "LightGCN": LightGCN, "NeuMF": NeuMF}

__all__ = ["MF", "MODEL_CLASSES", "LightGCN", "NeuMF", "RetrievalModel"]
