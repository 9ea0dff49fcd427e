"""CTR models over compressed field embeddings: DLRM, DCN-V2, DeepFM, Wide & Deep."""

from slimrec.models.ctr.base import CTRBatch, CTRModel, FieldEmbeddings, FieldSlot, FieldTensors
from slimrec.models.ctr.dcnv2 import DCNv2
from slimrec.models.ctr.deepfm import DeepFM
from slimrec.models.ctr.dlrm import DLRM
from slimrec.models.ctr.tables import build_field_embeddings
from slimrec.models.ctr.widedeep import WideDeep

__all__ = ["DLRM", "CTRBatch", "CTRModel", "DCNv2", "DeepFM", "FieldEmbeddings", "FieldSlot",
           "FieldTensors", "WideDeep", "build_field_embeddings"]
