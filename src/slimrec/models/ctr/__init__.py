"""CTR models over compressed field embeddings: DLRM, DCN-V2, DeepFM, Wide & Deep."""

from slimrec.models.ctr.base import CTRBatch, CTRModel, FieldEmbeddings, FieldSlot, FieldTensors
from slimrec.models.ctr.dcnv2 import DCNv2
from slimrec.models.ctr.deepfm import DeepFM
from slimrec.models.ctr.dlrm import DLRM
from slimrec.models.ctr.tables import build_field_embeddings, split_budget
from slimrec.models.ctr.widedeep import WideDeep

CTR_MODELS: dict[str, type[CTRModel]] = {cls.name: cls for cls in (DLRM, DCNv2, DeepFM, WideDeep)}

__all__ = ["CTR_MODELS", "DLRM", "CTRBatch", "CTRModel", "DCNv2", "DeepFM", "FieldEmbeddings",
           "FieldSlot", "FieldTensors", "WideDeep", "build_field_embeddings", "split_budget"]
