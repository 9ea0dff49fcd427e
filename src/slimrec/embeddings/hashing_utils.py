"""Seeded universal hashing ``((a·id + b) mod p) mod m``, exact in int64 for every id >= 0.

``p = 2^61 − 1`` (a Mersenne prime), so the family is universal over every id a LongTensor can
hold, not only ids below 2^31. ``a·x`` of two 61-bit numbers needs 122 bits, so the product is
split into 31- and 30-bit limbs whose partial products each fit in int64; the bounds are stated
beside each step. Hash parameters live in buffers (``hash_a``, ``hash_b``), so they are saved with
the table and counted by ``memory_bytes()``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

PRIME = (1 << 61) - 1
_LOW31 = (1 << 31) - 1
_LOW30 = (1 << 30) - 1
# Each hash function stores one int64 ``a`` and one int64 ``b``.
HASH_PARAM_BYTES = 2 * 8


def register_hash_params(module: nn.Module, num_hashes: int, generator: torch.Generator) -> None:
    """Draw ``num_hashes`` independent (a, b) pairs and register them as int64 buffers.

    ``hash_a: LongTensor[num_hashes]`` in ``[1, p)`` and ``hash_b: LongTensor[num_hashes]`` in
    ``[0, p)``, drawn from ``generator`` so a seed fixes them.
    """
    module.register_buffer("hash_a", torch.randint(1, PRIME, (num_hashes,), generator=generator))
    module.register_buffer("hash_b", torch.randint(0, PRIME, (num_hashes,), generator=generator))


def _mulmod(a: Tensor, x: Tensor) -> Tensor:
    """``(a · x) mod p`` for int64 tensors with ``0 <= a, x < p``, never overflowing int64."""
    a_high, a_low = a >> 31, a & _LOW31  # < 2^30, < 2^31
    x_high, x_low = x >> 31, x & _LOW31
    # a·x = a_high·x_high·2^62 + (a_high·x_low + a_low·x_high)·2^31 + a_low·x_low.
    # 2^61 ≡ 1 (mod p), so 2^62 ≡ 2: the first term becomes 2·a_high·x_high < 2^61.
    high = 2 * a_high * x_high
    # middle < 2^62; write it as m_high·2^30 + m_low, then middle·2^31 ≡ m_high + m_low·2^31.
    middle = a_high * x_low + a_low * x_high
    middle = (middle >> 30) + ((middle & _LOW30) << 31)  # < 2^32 + 2^61
    low = (a_low * x_low) % PRIME  # the product is < 2^62; reduced below 2^61
    return (high + middle + low) % PRIME  # the sum is < 3·2^61 + 2^32 < 2^63


def universal_hash(ids: Tensor, hash_a: Tensor, hash_b: Tensor, num_buckets: int) -> Tensor:
    """Bucket of each id under each hash: ``((a·id + b) mod p) mod num_buckets``.

    ``ids: LongTensor[...]`` (>= 0), ``hash_a, hash_b: LongTensor[k]`` -> ``LongTensor[..., k]``.
    """
    x = (ids % PRIME).unsqueeze(-1)  # reducing first changes nothing mod p and bounds x < 2^61
    return ((_mulmod(hash_a, x) + hash_b) % PRIME) % num_buckets
