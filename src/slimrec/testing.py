"""Conformance suites every registered embedding method and every registered model must pass.

``check_embedding_table(spec, num_embeddings, embedding_dim, stats)`` checks shapes, seeded
determinism, gradient flow, the state-dict round trip, ``distinct_rows()`` (when the table
shares vectors), the budget, and that ``memory_bytes()`` equals the tensor bytes of the saved
artifact. ``check_model(name)`` trains the model one epoch
on its task's toy data through the one ``fit``, saves and reloads it through the one artifact,
and checks that the reloaded model scores the same and that its bytes are what is stored. A
method or model gets these checks by being registered.
"""

from __future__ import annotations

import json
import math
import struct
from typing import Any

import torch
from safetensors.torch import save

from slimrec.embeddings.base import EmbeddingTable
from slimrec.embeddings.spec import EmbeddingSpec, TableStats, build_embedding, full_fp32_bytes
from slimrec.models.base import RecModel


def safetensors_tensor_bytes(blob: bytes) -> int:
    """Bytes of tensor data in a safetensors blob, read from its header."""
    (header_size,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8: 8 + header_size])
    return sum(entry["data_offsets"][1] - entry["data_offsets"][0]
               for name, entry in header.items() if name != "__metadata__")


def _ids(num_embeddings: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(1234)
    ids = torch.randint(0, num_embeddings, (3, 5), generator=generator)
    ids[0, 0], ids[0, 1] = 0, num_embeddings - 1
    return ids


def check_embedding_table(spec: EmbeddingSpec, num_embeddings: int, embedding_dim: int,
                          stats: TableStats | None = None) -> EmbeddingTable:
    """Run the conformance checks; raise ``AssertionError`` naming the first failure."""
    name = spec.method
    table = build_embedding(spec, num_embeddings, embedding_dim, stats, seed=7)
    assert isinstance(table, EmbeddingTable), f"{name}: build must return an EmbeddingTable"
    assert (table.num_embeddings, table.embedding_dim) == (num_embeddings, embedding_dim)
    ids = _ids(num_embeddings)
    output = table(ids)
    assert output.shape == (*ids.shape, embedding_dim), f"{name}: output shape {output.shape}"
    assert output.dtype == torch.float32, f"{name}: output dtype {output.dtype}"
    assert torch.isfinite(output).all(), f"{name}: non-finite output"

    twin = build_embedding(spec, num_embeddings, embedding_dim, stats, seed=7)
    assert torch.equal(twin(ids), output), f"{name}: same seed gave different tables"

    table.zero_grad()
    table(ids).square().sum().backward()
    grads = [p.grad for p in table.parameters() if p.requires_grad]
    assert grads, f"{name}: no trainable parameters"
    assert any(g is not None and g.abs().sum() > 0 for g in grads), f"{name}: no gradient flows"

    other = build_embedding(spec, num_embeddings, embedding_dim, stats, seed=8)
    other.load_state_dict(table.state_dict())
    assert torch.allclose(other(ids), table(ids)), f"{name}: state_dict round trip differs"

    everything = table.full_weight(chunk_size=max(1, num_embeddings // 3))
    assert everything.shape == (num_embeddings, embedding_dim)
    assert torch.allclose(everything[ids], table(ids), atol=1e-6), f"{name}: full_weight"
    shared = table.distinct_rows()
    if shared is not None:  # scorers rely on it: it must be exact
        vectors, index = shared
        assert index.shape == (num_embeddings,) and len(vectors) <= num_embeddings
        assert torch.equal(vectors[index], everything), f"{name}: distinct_rows differ"

    served = table.for_inference()
    state = table.inference_state()
    blob = save({key: value.contiguous() for key, value in state.items()})
    assert safetensors_tensor_bytes(blob) == table.memory_bytes(), (
        f"{name}: memory_bytes() {table.memory_bytes()} != artifact tensor bytes "
        f"{safetensors_tensor_bytes(blob)}")
    rebuilt = type(served).from_state(served.config, num_embeddings, embedding_dim, state)
    assert torch.allclose(rebuilt(ids), served(ids), atol=1e-6), f"{name}: from_state differs"
    with torch.no_grad():  # serving scores items from the stored form: it must agree
        queries = torch.randn(3, embedding_dim, generator=torch.Generator().manual_seed(0))
        expected = queries @ served.full_weight().T
        for chunk in (max(1, num_embeddings // 3), num_embeddings):
            assert torch.allclose(served.score_rows(queries, chunk_size=chunk), expected,
                                  atol=1e-4, rtol=1e-4), f"{name}: score_rows differs"

    if spec.budget is not None:
        budget_bytes = spec.budget.resolve(full_fp32_bytes(num_embeddings, embedding_dim))
        assert table.memory_bytes() <= budget_bytes, (
            f"{name}: {table.memory_bytes()} bytes over the budget of {budget_bytes}")
    return table


def check_model(name: str, **settings: Any) -> RecModel:
    """Run the model conformance checks on registered model ``name``; raise ``AssertionError``
    naming the first failure. ``settings`` override the run settings (e.g. ``embedding``)."""
    import tempfile

    from slimrec.config import deep_merge, parse_config
    from slimrec.models import MODELS
    from slimrec.serve.artifact import load_artifact, save_artifact
    from slimrec.tasks import get_task
    from slimrec.train.loop import fit

    task = get_task(MODELS[name].task)
    data = task.toy_data(seed=0)
    values = deep_merge({"model": name, "dim": 8, "progress": False,
                         "train": {"epochs": 1, "eval_every": 1, "batch_size": 512}}, settings)
    config = parse_config(task.config_class, values, where=f"check_model({name!r})")
    model = task.build(config, data)
    assert model.name == name and model.task == task.name, f"{name}: registry key or task"
    start = {key: value.clone() for key, value in model.state_dict().items()}
    result = fit(model, data, config)
    assert result.epochs_run == 1, f"{name}: fit ran {result.epochs_run} epochs, not 1"
    assert any(not torch.equal(start[key], value) for key, value in model.state_dict().items()
               if key in start), f"{name}: one epoch of fit changed no weight"
    trained = task.evaluate(model, data, "test", config).metrics
    assert all(math.isfinite(value) for value in trained.values()), f"{name}: {trained}"
    with tempfile.TemporaryDirectory() as folder:
        manifest = save_artifact(folder, model, task.vocab(data), config.model_dump(mode="json"),
                                 trained, task.artifact_files(data))
        assert manifest["task"] == task.name and manifest["trained_model"] == name
        stored = sum(manifest["tensor_bytes"].values())
        assert manifest["memory_bytes"]["model_total"] == stored, (
            f"{name}: memory_bytes {manifest['memory_bytes']['model_total']} != stored tensor "
            f"bytes {stored}")
        reloaded = task.evaluate(load_artifact(folder).model, data, "test", config).metrics
    for key, value in trained.items():
        assert math.isclose(value, reloaded[key], abs_tol=1e-6), (
            f"{name}: {key} {value} after training but {reloaded[key]} after reloading")
    return model
