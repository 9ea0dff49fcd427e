import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from slimrec.data.splits import carve_validation, holdout_counts, random_holdout_mask
from slimrec.data.synthetic import make_synthetic


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(0, 9), min_size=1, max_size=200), st.floats(0.05, 0.95),
       st.integers(0, 10))
def test_random_holdout_per_user_counts(users, fraction, seed):
    users = np.asarray(users)
    mask = random_holdout_mask(users, 10, fraction, seed)
    sizes = np.bincount(users, minlength=10)
    held = np.bincount(users[mask], minlength=10)
    assert (held == holdout_counts(sizes, fraction)).all()
    assert ((sizes - held) >= np.minimum(sizes, 1)).all()  # every user keeps a train item


def test_random_holdout_is_seeded():
    users = np.repeat(np.arange(20), 10)
    a = random_holdout_mask(users, 20, 0.2, seed=1)
    b = random_holdout_mask(users, 20, 0.2, seed=1)
    c = random_holdout_mask(users, 20, 0.2, seed=2)
    assert (a == b).all() and (a != c).any()


def test_carve_validation_moves_train_items(tiny_data):
    data = carve_validation(tiny_data, 0.1, seed=0)
    assert data.train.nnz + data.val.nnz == tiny_data.train.nnz
    assert data.train.multiply(data.val).nnz == 0
    assert (data.test != tiny_data.test).nnz == 0
    assert np.diff(data.train.indptr).min() >= 1


def test_synthetic_is_deterministic_and_structured():
    a, b = make_synthetic(seed=5, num_users=200, num_items=100), make_synthetic(
        seed=5, num_users=200, num_items=100)
    assert (a.train != b.train).nnz == 0 and (a.test != b.test).nnz == 0
    stats = a.stats()
    assert stats["users"] == 200 and stats["train"] > 0 and stats["test_users"] == 200
    degree = a.item_frequencies()
    assert degree.max() > 5 * np.median(degree)  # power-law popularity
