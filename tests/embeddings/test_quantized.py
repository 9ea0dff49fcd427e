import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from slimrec.data.splits import carve_validation
from slimrec.embeddings import EmbeddingSpec, build_embedding
from slimrec.embeddings.quantized import (
    PackedQuantizedTable,
    QuantizedTable,
    QuantizedTableConfig,
    choose_bits,
    pack_codes,
    packed_bytes,
    unpack_codes,
)
from slimrec.errors import BudgetError, ConfigError
from slimrec.eval.ranking import evaluate_ranking
from slimrec.models import MF
from slimrec.tasks import RetrievalConfig
from slimrec.testing import check_embedding_table
from slimrec.train.config import TrainConfig
from slimrec.train.loop import fit

TRAIN = RetrievalConfig(train=TrainConfig(epochs=6, batch_size=256, lr=5e-3, eval_every=3,
                                          patience=2), seed=0, progress=False)


@pytest.mark.parametrize("bits", [8, 4, 2, 1])
@pytest.mark.parametrize("dim", [1, 7, 16])
def test_pack_unpack_round_trip(bits, dim):
    codes = torch.randint(0, 2 ** bits, (5, dim), dtype=torch.uint8)
    packed = pack_codes(codes, bits)
    assert packed.dtype == torch.uint8 and packed.shape == (5, math.ceil(dim * bits / 8))
    assert torch.equal(unpack_codes(packed, bits, dim), codes)
    assert torch.equal(unpack_codes(packed[[3, 1]], bits, dim), codes[[3, 1]])


@pytest.mark.parametrize(("n", "d", "budget"), [(37, 8, 0.5), (1, 1, "5B"), (40, 200, 0.1)])
def test_conformance(n, d, budget):
    check_embedding_table(EmbeddingSpec("quantized", budget=budget), n, d)


def test_memory_bytes_by_hand():
    # 4-bit codes of 7 columns take 4 bytes a row; fp16 scale and offset 2 bytes each.
    table = build_embedding(EmbeddingSpec("quantized", {"bits": 4}), 10, 7)
    assert table.memory_bytes() == 10 * (4 + 2 + 2) == table.config.table_bytes(10, 7)
    served = table.for_inference()
    assert isinstance(served, PackedQuantizedTable)
    assert served.codes.dtype == torch.uint8 and served.scale.dtype == torch.float16


def test_qat_gradients_reach_weights_steps_and_offsets():
    table = QuantizedTable(20, 8, QuantizedTableConfig(bits=2), seed=0)
    out = table(torch.tensor([[1, 2], [3, 19]]))
    assert out.shape == (2, 2, 8)
    (out * torch.randn_like(out)).sum().backward()
    for name in ("weight", "log_step", "offset"):
        assert getattr(table, name).grad.abs().sum() > 0, name


def _autograd_reference(table: QuantizedTable, ids: torch.Tensor) -> torch.Tensor:
    """The QAT formula written op by op with a straight-through rounding (what the fused lookup
    replaced), so autograd derives its gradients."""
    step, offset = table._stored(torch.nn.functional.embedding(ids, table.log_step),
                                 torch.nn.functional.embedding(ids, table.offset))
    scaled = torch.clamp((torch.nn.functional.embedding(ids, table.weight) - offset) / step,
                         0, table.levels)
    return (scaled + (torch.round(scaled) - scaled).detach()) * step + offset


@pytest.mark.parametrize("bits", [8, 2, 1])
@pytest.mark.parametrize("sparse", [False, True])
def test_fused_qat_lookup_matches_autograd_of_the_formula(bits, sparse):
    table = QuantizedTable(25, 6, QuantizedTableConfig(bits=bits, sparse_grad=sparse), seed=1)
    with torch.no_grad():  # steps too small for the range clamp many entries at both ends
        table.log_step.add_(torch.rand(25, 1) * 2 - 1.5)
        table.offset.add_(torch.randn(25, 1) * 0.05)
    ids = torch.tensor([[3, 3, 0], [24, 7, 3]])
    weights = torch.randn(2, 3, 6, dtype=torch.float64).float()
    gradients, sparse_grads = [], []
    for lookup in (table.lookup, lambda i: _autograd_reference(table, i)):
        table.zero_grad(set_to_none=True)
        out = lookup(ids)
        (out * weights).sum().backward()
        sparse_grads.append(table.weight.grad.is_sparse)
        gradients.append((out.detach(), *(getattr(table, name).grad.to_dense()
                                          for name in ("weight", "log_step", "offset"))))
    (fused, *fused_grads), (reference, *reference_grads) = gradients
    assert torch.equal(fused, reference)
    for got, want in zip(fused_grads, reference_grads, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    assert sparse_grads[0] == sparse  # the reference's F.embedding gives dense gradients


@pytest.mark.parametrize("bits", [8, 4, 2, 1])
def test_qat_forward_is_exactly_the_packed_table(bits):
    table = QuantizedTable(30, 9, QuantizedTableConfig(bits=bits), seed=0)
    with torch.no_grad():
        table.log_step.add_(torch.rand(30, 1) - 0.5)
        table.offset.add_(torch.randn(30, 1) * 0.01)
    assert torch.equal(table.full_weight(), table.for_inference().full_weight())
    assert table(torch.tensor([0])).unique().numel() <= 2 ** bits
    # exported a few rows at a time (bounded memory on large tables): the same packed state
    whole, chunked = table.for_inference(chunk_size=30), table.for_inference(chunk_size=7)
    for name, tensor in whole.state_dict().items():
        assert torch.equal(chunked.state_dict()[name], tensor)


@pytest.mark.parametrize("bits", [8, 4, 2, 1])
def test_post_training_quantization_error_is_half_a_step(bits):
    full = build_embedding("full", 50, 16, seed=0)
    packed = QuantizedTableConfig.from_trained(full, None, {"bits": bits})
    assert isinstance(packed, PackedQuantizedTable)
    error = (packed.full_weight() - full.weight).abs()
    step = packed.scale.float().unsqueeze(1)
    # Half a step from rounding, plus fp16 rounding of the top of each row's range.
    assert (error <= step / 2 + 1e-3 * full.weight.abs().max()).all()
    assert packed.memory_bytes() == packed_bytes(50, 16, bits)


def test_post_training_picks_the_most_bits_that_fit():
    full = build_embedding("full", 100, 64, seed=0)
    # int8 needs 68 bytes a row (26.6% of fp32), int4 36 (14.1%), int2 20 (7.8%), int1 12 (4.7%).
    for budget, bits in [(0.27, 8), (0.25, 4), (0.1, 2), (0.05, 1)]:
        budget_bytes = int(budget * 100 * 64 * 4)
        packed = QuantizedTableConfig.from_trained(full, budget_bytes, {})
        assert packed.config.bits == bits and packed.memory_bytes() <= budget_bytes
    with pytest.raises(BudgetError, match="smallest reachable table takes 1200 bytes"):
        QuantizedTableConfig.from_trained(full, 1199, {})


def test_bits_and_budget_together_is_a_clear_error():
    with pytest.raises(ConfigError, match="bits is solved from the budget"):
        build_embedding(EmbeddingSpec("quantized", {"bits": 4}, 0.5), 10, 8)


def test_weights_beyond_fp16_are_a_clear_error():
    full = build_embedding("full", 3, 4, seed=0)
    with torch.no_grad():
        full.weight[0, 0] = 1e6
    with pytest.raises(ConfigError, match="float16"):
        QuantizedTableConfig.from_trained(full, None, {})


def test_same_seed_same_table():
    spec = EmbeddingSpec("quantized", budget=0.2)
    first, second = build_embedding(spec, 20, 8, seed=2), build_embedding(spec, 20, 8, seed=2)
    assert torch.equal(first.full_weight(), second.full_weight())


@settings(max_examples=300, deadline=None)
@given(n=st.one_of(st.just(1), st.integers(1, 10_000), st.integers(10**9, 10**13)),
       d=st.integers(1, 1024), fraction=st.floats(1e-3, 1.5))
def test_solver_picks_the_most_bits_that_fit(n, d, fraction):
    budget = int(fraction * n * d * 4)
    if budget < packed_bytes(n, d, 1):
        with pytest.raises(BudgetError, match="smallest reachable table"):
            choose_bits(QuantizedTableConfig, budget, n, d, {})
        return
    config = choose_bits(QuantizedTableConfig, budget, n, d, {})
    assert config.table_bytes(n, d) <= budget
    more = [bits for bits in (8, 4, 2, 1) if bits > config.bits]
    assert all(packed_bytes(n, d, bits) > budget for bits in more)


def test_qat_training_decreases_loss_and_serves_the_packed_table(tiny_data):
    data = carve_validation(tiny_data, 0.1, seed=0)
    spec = EmbeddingSpec("quantized", budget=0.25)
    model = MF(build_embedding(spec, data.num_users, 16, seed=0),
               build_embedding(spec, data.num_items, 16, seed=1))
    losses = [record["loss"] for record in fit(model, data, TRAIN).history]
    assert losses[-1] < losses[0]
    for table in model.tables().values():
        assert table.config.bits == 4
        assert torch.equal(table.full_weight(), table.for_inference().full_weight())


def test_int8_post_training_keeps_the_ranking_quality(tiny_data):
    data = carve_validation(tiny_data, 0.1, seed=0)
    model = MF(build_embedding("full", data.num_users, 16, seed=0),
               build_embedding("full", data.num_items, 16, seed=1))
    fit(model, data, TRAIN)
    before = evaluate_ranking(model.scorer(), data, "test").metrics["ndcg@20"]
    packed = MF(*(QuantizedTableConfig.from_trained(table, None, {"bits": 8})
                  for table in (model.user_table, model.item_table)))
    after = evaluate_ranking(packed.scorer(), data, "test").metrics["ndcg@20"]
    assert after == pytest.approx(before, abs=0.01)
