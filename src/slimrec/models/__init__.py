"""Recommendation models; they hold embedding tables without knowing the method.

Importing this package registers every model in ``MODELS`` (one registry, lowercase keys).
"""

from slimrec.models.base import MODELS, RecModel, RetrievalModel, model_class, register_model
from slimrec.models.ctr import DLRM, CTRModel, DCNv2, DeepFM, WideDeep
from slimrec.models.lightgcn import LightGCN
from slimrec.models.mf import MF
from slimrec.models.multitask import PLE, AutoIFS, MMoE, MultiTaskModel, SharedBottom
from slimrec.models.neumf import NeuMF
from slimrec.models.sequential import SASRec

__all__ = ["DLRM", "MF", "MODELS", "PLE", "AutoIFS", "CTRModel", "DCNv2", "DeepFM", "LightGCN",
           "MMoE", "MultiTaskModel", "NeuMF", "RecModel", "RetrievalModel", "SASRec",
           "SharedBottom", "WideDeep", "model_class", "register_model"]
