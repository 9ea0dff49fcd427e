"""Conformance suite every registered embedding method must pass.

``check_embedding_table(spec, num_embeddings, embedding_dim, stats)`` checks shapes, seeded
determinism, gradient flow, the state-dict round trip, the budget, and that ``memory_bytes()``
equals the tensor bytes of the saved artifact. A method gets these checks by being registered.
"""

from __future__ import annotations

import json
import struct

import torch
from safetensors.torch import save

from slimrec.embeddings.base import EmbeddingTable
from slimrec.embeddings.spec import EmbeddingSpec, TableStats, build_embedding, full_fp32_bytes


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

    served = table.for_inference()
    state = table.inference_state()
    blob = save({key: value.contiguous() for key, value in state.items()})
    assert safetensors_tensor_bytes(blob) == table.memory_bytes(), (
        f"{name}: memory_bytes() {table.memory_bytes()} != artifact tensor bytes "
        f"{safetensors_tensor_bytes(blob)}")
    rebuilt = type(served).from_state(served.config, num_embeddings, embedding_dim, state)
    assert torch.allclose(rebuilt(ids), served(ids), atol=1e-6), f"{name}: from_state differs"

    if spec.budget is not None:
        budget_bytes = spec.budget.resolve(full_fp32_bytes(num_embeddings, embedding_dim))
        assert table.memory_bytes() <= budget_bytes, (
            f"{name}: {table.memory_bytes()} bytes over the budget of {budget_bytes}")
    return table
