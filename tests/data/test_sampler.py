import numpy as np
import pytest
import scipy.sparse as sp

from slimrec.data.sampler import NegativeSampler
from slimrec.errors import DataError


def test_never_returns_a_positive():
    rng = np.random.default_rng(0)
    dense = rng.random((50, 12)) < 0.7
    dense[:, 0] = False
    seen = sp.csr_matrix(dense.astype(np.float32))
    sampler = NegativeSampler(seen)
    users = np.repeat(np.arange(50), 40)
    negatives = sampler.sample(users, rng)
    assert not dense[users, negatives].any()
    # uniform over the unseen items of a user: every unseen item shows up
    user0 = negatives[users == 0]
    assert set(user0) == set(np.flatnonzero(~dense[0]))


def test_seeded():
    seen = sp.random(30, 40, density=0.3, format="csr", random_state=1, dtype=np.float32)
    sampler = NegativeSampler(seen)
    users = np.arange(30).repeat(5)
    a = sampler.sample(users, np.random.default_rng(4))
    b = sampler.sample(users, np.random.default_rng(4))
    assert (a == b).all()


def test_user_with_every_item_is_an_error():
    with pytest.raises(DataError, match="all 3 items"):
        NegativeSampler(sp.csr_matrix(np.ones((2, 3), dtype=np.float32)))


@pytest.mark.parametrize("num_items", [1024, 997])  # a power of two, and a prime
def test_positive_check_is_exact_for_every_pair(num_items):
    """The hash bitmap only pre-filters: every pair is classified exactly, including when the
    item count is a power of two (keys modulo a power of two would share slots)."""
    seen = sp.random(300, num_items, density=0.05, format="csr", random_state=3,
                     dtype=np.float32)
    sampler = NegativeSampler(seen)
    users, items = np.divmod(np.arange(300 * num_items), num_items)
    expected = seen.toarray().ravel() != 0
    assert (sampler._is_positive(users, items) == expected).all()
