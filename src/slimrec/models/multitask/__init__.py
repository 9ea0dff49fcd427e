"""Multi-scenario multi-task models over compressed field embeddings: shared-bottom, MMoE,
PLE and AutoIFS."""

from slimrec.models.multitask.autoifs import AutoIFS
from slimrec.models.multitask.base import LoRALinear, MultiTaskBatch, MultiTaskModel
from slimrec.models.multitask.baselines import PLE, MMoE, SharedBottom

__all__ = ["PLE", "AutoIFS", "LoRALinear", "MMoE", "MultiTaskBatch", "MultiTaskModel",
           "SharedBottom"]
