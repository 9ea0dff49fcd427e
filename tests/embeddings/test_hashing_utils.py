import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from slimrec.embeddings.hashing_utils import PRIME, register_hash_params, universal_hash
from slimrec.embeddings.sizing import fixed_choices, index_dtype, largest_fitting
from slimrec.embeddings.tt import TTTableConfig
from slimrec.errors import ConfigError

INT64_MAX = 2**63 - 1


@settings(max_examples=200, deadline=None)
@given(ids=st.lists(st.integers(0, INT64_MAX), min_size=1, max_size=20),
       a=st.integers(1, PRIME - 1), b=st.integers(0, PRIME - 1),
       num_buckets=st.integers(1, 2**40))
def test_universal_hash_is_exact_for_every_int64_id(ids, a, b, num_buckets):
    got = universal_hash(torch.tensor(ids), torch.tensor([a]), torch.tensor([b]), num_buckets)
    # Python integers never overflow: the reference is the textbook formula.
    expected = [((a * x + b) % PRIME) % num_buckets for x in ids]
    assert got[:, 0].tolist() == expected


def test_extreme_parameters_do_not_overflow():
    ids = torch.tensor([0, 1, PRIME - 1, PRIME, INT64_MAX])
    a, b = torch.tensor([PRIME - 1]), torch.tensor([PRIME - 1])
    expected = [((int(a) * x + int(b)) % PRIME) % 1000 for x in ids.tolist()]
    assert universal_hash(ids, a, b, 1000)[:, 0].tolist() == expected


def test_hashes_spread_consecutive_ids_evenly():
    module = torch.nn.Module()
    register_hash_params(module, 2, torch.Generator().manual_seed(0))
    buckets = universal_hash(torch.arange(20_000), module.hash_a, module.hash_b, 100)
    assert buckets.shape == (20_000, 2)
    for k in range(2):
        counts = torch.bincount(buckets[:, k], minlength=100)
        assert counts.min() > 120 and counts.max() < 280  # 200 expected per bucket
    assert not torch.equal(buckets[:, 0], buckets[:, 1])


def test_hash_params_are_seeded_buffers():
    first, second = torch.nn.Module(), torch.nn.Module()
    register_hash_params(first, 2, torch.Generator().manual_seed(5))
    register_hash_params(second, 2, torch.Generator().manual_seed(5))
    assert set(first.state_dict()) == {"hash_a", "hash_b"}
    assert torch.equal(first.hash_a, second.hash_a) and first.hash_a.dtype == torch.int64
    assert ((first.hash_a >= 1) & (first.hash_a < PRIME)).all()


@pytest.mark.parametrize(("max_value", "dtype"), [
    (0, torch.int8), (127, torch.int8), (128, torch.int16), (32767, torch.int16),
    (32768, torch.int32), (2**31 - 1, torch.int32), (2**31, torch.int64)])
def test_index_dtype_is_the_narrowest_that_fits(max_value, dtype):
    assert index_dtype(max_value) == dtype


def test_index_dtype_beyond_int64():
    with pytest.raises(ConfigError, match="does not fit in int64"):
        index_dtype(2**63)


@given(sizes=st.lists(st.integers(0, 50), min_size=1, max_size=30), budget=st.integers(0, 1500))
def test_largest_fitting_matches_a_linear_scan(sizes, budget):
    cumulative = [sum(sizes[: k + 1]) for k in range(len(sizes))]  # non-decreasing
    fits = [k for k in range(len(sizes)) if cumulative[k] <= budget]
    found = largest_fitting(0, len(sizes) - 1, lambda k: cumulative[k], budget)
    assert found == (max(fits) if fits else None)


def test_fixed_choices_fill_the_free_field_and_keep_the_rest():
    config = fixed_choices(TTTableConfig, {"num_cores": 4}, free=("rank",))
    assert (config.rank, config.num_cores) == (1, 4)
    with pytest.raises(ConfigError, match=r"num_cores .*less than or equal to 8; got 9"):
        fixed_choices(TTTableConfig, {"num_cores": 9}, free=("rank",))
