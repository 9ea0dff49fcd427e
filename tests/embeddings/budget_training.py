"""Shared by the sparse methods' tests: MF trained on tiny data with one spec for both tables."""

from slimrec.data.splits import carve_validation
from slimrec.embeddings import EmbeddingSpec, build_embedding
from slimrec.models import MF
from slimrec.tasks import RetrievalConfig
from slimrec.train.config import TrainConfig
from slimrec.train.loop import fit


def train_mf_within_budget(spec: EmbeddingSpec, tiny_data) -> MF:
    """MF-BPR with ``spec`` tables, 6 epochs with early stopping on a validation split; checks
    that the loss went down and that every table fits the 25% budget, and returns the model."""
    data = carve_validation(tiny_data, 0.1, seed=0)
    model = MF(build_embedding(spec, data.num_users, 16, seed=0),
               build_embedding(spec, data.num_items, 16, seed=1))
    config = RetrievalConfig(train=TrainConfig(epochs=6, batch_size=256, lr=5e-3, eval_every=3,
                                               patience=2), seed=0, progress=False)
    losses = [record["loss"] for record in fit(model, data, config).history]
    assert losses[-1] < losses[0]
    for table in model.tables().values():
        assert table.memory_bytes() <= int(0.25 * table.full_fp32_bytes())
    return model
