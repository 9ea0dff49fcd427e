"""Causal self-attention of the sequential models: dense, and BlossomRec's sparse attention.

Every module maps ``x: Tensor[B, L, dim]`` (right-padded: row ``b`` holds its items at
positions ``0 .. lengths[b] - 1``) to ``Tensor[B, L, dim]``. ``num_heads`` query heads share
``kv_heads`` key/value heads (grouped-query attention, ``G = num_heads // kv_heads`` queries per
group); internally ``q: [B, Hkv, G, L, D]``, ``k, v: [B, Hkv, L, D]``. Padded positions come
after every real one, so causality alone keeps real queries off padding, and every query
attends at least to itself: no row is ever all masked, so padding and short sequences never
yield NaN.

BlossomRec (Ma et al., WWW 2026) mixes two sparse branches with a gate:

- **long-term**: keys are cut into windows of ``window`` tokens ending at each block end
  (stride ``block``); a window plus a learned intra-window position embedding is compressed by
  an MLP into one block key, and one learned memory key joins them. Each query scores the
  blocks that end before its own block and hold a real item; the query heads of a KV group
  average their scores (softmax probabilities) and keep the ``top_k`` blocks; the query then
  attends over the tokens of those blocks plus its own block, causally. The block scores only
  rank blocks (their attention output is not used), so the ranking carries no gradient.
- **short-term**: keys ``j`` with ``i - j < local`` or ``i - j`` a power of two.
- **gate**: ``sigmoid(Linear(x))`` per token and head for each branch; weight 0 and bias
  (-2, +2) at initialisation, i.e. about 0.12 long and 0.88 short. The output is the gated
  sum of the branches (not normalised).

Two paths compute the same thing: ``reference`` builds ``L x L`` masks (for tests and short
sequences); ``gather`` gathers, for each query, the ``(top_k + 1) * block`` long-term keys and the
``local + log2 L`` short-term keys, so its memory and time grow as ``L * (k*b + 8 + log2 L)``
(plus the block ranking, ``L * L / block`` scores per head, computed without gradient in
query chunks). It runs ``GATHER_CHUNK`` queries at a time, each chunk checkpointed, so only one
chunk's gathered keys are ever held. ``auto`` (the default) takes the reference below
``GATHER_FROM`` tokens.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

# Shortest sequence the "auto" path gathers: below it, gathering (top_k + 1) * block
# head_dim-wide keys per query moves more memory than the reference's L x L masks.
GATHER_FROM = 256
# Queries ranked per chunk when selecting blocks: bounds the (chunk x blocks) score memory.
SELECTION_CHUNK = 512
# Queries per checkpointed chunk of the gather path: the gathered keys of one chunk at a time.
GATHER_CHUNK = 256


def rotate(x: Tensor) -> Tensor:
    """Rotary position embedding (RoPE) over the last two dims ``[..., L, D]`` (``D`` even),
    position ``i`` for row ``i``."""
    length, dim = x.shape[-2], x.shape[-1]
    inverse = 10000.0 ** (-torch.arange(0, dim, 2, dtype=torch.float32, device=x.device) / dim)
    angles = torch.arange(length, dtype=torch.float32, device=x.device)[:, None] * inverse
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
    first, second = x[..., : dim // 2], x[..., dim // 2:]
    return torch.cat([first * cos - second * sin, first * sin + second * cos], dim=-1)


def gather_keys(keys: Tensor, index: Tensor) -> Tensor:
    """``keys[b, h, index[b, h, l, t]]``: ``[B, H, L, D]`` x ``[B, H, L, T]`` ->
    ``[B, H, L, T, D]``, as one embedding lookup (its backward is a cheap scatter-add)."""
    batch, heads, length, dim = keys.shape
    offsets = torch.arange(batch * heads, device=keys.device).view(batch, heads, 1, 1) * length
    return F.embedding(index + offsets, keys.reshape(-1, dim))


def masked_attention(q: Tensor, keys: Tensor, values: Tensor, allowed: Tensor) -> Tensor:
    """Softmax attention of ``q: [B, H, G, L, D]`` over gathered ``keys, values:
    [B, H, L, T, D]`` where ``allowed: [B|1, H|1, L, T]``; -> ``[B, H, G, L, D]``."""
    scores = torch.einsum("bhgld,bhltd->bhglt", q, keys) / math.sqrt(q.shape[-1])
    scores = scores.masked_fill(~allowed[:, :, None], -torch.inf)
    return torch.einsum("bhglt,bhltd->bhgld", scores.softmax(-1), values)


def dense_attention(q: Tensor, keys: Tensor, values: Tensor, allowed: Tensor) -> Tensor:
    """Softmax attention over all ``L`` keys ``[B, H, L, D]`` where ``allowed: [B|1, H|1, L, L]``
    (query x key); -> ``[B, H, G, L, D]``."""
    scores = torch.einsum("bhgld,bhmd->bhglm", q, keys) / math.sqrt(q.shape[-1])
    scores = scores.masked_fill(~allowed[:, :, None], -torch.inf)
    return torch.einsum("bhglm,bhmd->bhgld", scores.softmax(-1), values)


class GroupedAttention(nn.Module):
    """Projections shared by the attention kinds: ``num_heads`` queries, ``kv_heads`` keys and
    values, optional RoPE on queries and keys, and the output projection."""

    def __init__(self, dim: int, num_heads: int, kv_heads: int, rope: bool) -> None:
        super().__init__()
        self.num_heads, self.kv_heads = num_heads, kv_heads
        self.head_dim = dim // num_heads
        self.rope = rope
        self.query = nn.Linear(dim, num_heads * self.head_dim)
        self.key = nn.Linear(dim, kv_heads * self.head_dim)
        self.value = nn.Linear(dim, kv_heads * self.head_dim)
        self.out = nn.Linear(num_heads * self.head_dim, dim)

    def project(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``q: [B, Hkv, G, L, D]``, ``k, v: [B, Hkv, L, D]``."""
        batch, length, _ = x.shape
        groups = self.num_heads // self.kv_heads
        q = self.query(x).view(batch, length, self.kv_heads, groups, self.head_dim)
        q = q.permute(0, 2, 3, 1, 4)
        k = self.key(x).view(batch, length, self.kv_heads, self.head_dim).transpose(1, 2)
        v = self.value(x).view(batch, length, self.kv_heads, self.head_dim).transpose(1, 2)
        if self.rope:
            q, k = rotate(q), rotate(k)
        return q, k, v

    def merge(self, heads: Tensor) -> Tensor:
        """``[B, Hkv, G, L, D]`` -> ``[B, L, dim]``."""
        batch, _, _, length, _ = heads.shape
        return self.out(heads.permute(0, 3, 1, 2, 4).reshape(batch, length, -1))


def causal_mask(length: int, device: torch.device) -> Tensor:
    """``[L, L]``: key ``j`` visible to query ``i`` when ``j <= i``."""
    index = torch.arange(length, device=device)
    return index[None, :] <= index[:, None]


class DenseAttention(GroupedAttention):
    """Causal softmax attention over every earlier position (SASRec's), built with the
    explicit ``L x L`` score matrix."""

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        q, k, v = self.project(x)
        allowed = causal_mask(x.shape[1], x.device)[None, None]
        return self.merge(dense_attention(q, k, v, allowed))


class BlossomAttention(GroupedAttention):
    """BlossomRec long/short-term sparse attention with a gate (see the module docstring)."""

    def __init__(self, dim: int, num_heads: int, kv_heads: int, rope: bool, *,
                 window: int = 32, block: int = 16, top_k: int = 4, local: int = 8,
                 compress_hidden: int = 64, path: str = "auto") -> None:
        super().__init__(dim, num_heads, kv_heads, rope)
        self.window, self.block, self.top_k, self.local, self.path = (window, block, top_k,
                                                                      local, path)
        self.window_positions = nn.Parameter(torch.randn(window, self.head_dim) * 0.02)
        self.compress = nn.Sequential(nn.Linear(window * self.head_dim, compress_hidden),
                                      nn.ReLU(), nn.Linear(compress_hidden, self.head_dim))
        self.memory_key = nn.Parameter(torch.randn(kv_heads, self.head_dim) * 0.02)
        self.gate = nn.Linear(dim, 2 * num_heads)
        nn.init.zeros_(self.gate.weight)
        with torch.no_grad():  # sigmoid(-2) ~ 0.12 long, sigmoid(+2) ~ 0.88 short
            self.gate.bias.copy_(torch.cat([torch.full((num_heads,), -2.0),
                                            torch.full((num_heads,), 2.0)]))

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        q, k, v = self.project(x)
        blocks, usable = self.select_blocks(q, k, lengths)
        if self.path == "reference" or (self.path == "auto" and x.shape[1] < GATHER_FROM):
            long = self.long_reference(q, k, v, blocks, usable)
            short = self.short_reference(q, k, v)
        else:
            long, short = self.gather_branches(q, k, v, blocks, usable)
        batch, length, _ = x.shape
        gates = torch.sigmoid(self.gate(x)).view(batch, length, 2, self.kv_heads, -1)
        gates = gates.permute(2, 0, 3, 4, 1)[..., None]  # [2, B, Hkv, G, L, 1]
        return self.merge(gates[0] * long + gates[1] * short)

    # ------------------------------------------------------------------ block ranking
    def block_keys(self, k: Tensor) -> Tensor:
        """One compressed key per block: ``[B, Hkv, L, D]`` -> ``[B, Hkv, nb, D]``, from the
        ``window`` keys ending at the block's end (zeros before position 0)."""
        length = k.shape[2]
        num_blocks = -(-length // self.block)
        padded = F.pad(k, (0, 0, self.window - self.block, num_blocks * self.block - length))
        windows = padded.unfold(2, self.window, self.block).transpose(-1, -2)
        windows = windows + self.window_positions  # [B, Hkv, nb, window, D]
        return self.compress(windows.flatten(-2))

    @torch.no_grad()
    def select_blocks(self, q: Tensor, k: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """The ``top_k`` earlier blocks of each query, shared by a KV group's heads:
        ``(blocks, usable)``, both ``[B, Hkv, L, top_k]``; ``usable`` is False where fewer
        than ``top_k`` blocks were visible (the slot's block is then ignored)."""
        length = q.shape[3]
        keys = self.block_keys(k)
        num_blocks = keys.shape[2]
        query_block = torch.arange(length, device=q.device) // self.block
        block_start = torch.arange(num_blocks, device=q.device) * self.block
        holds_item = block_start[None, :] < lengths[:, None]  # [B, nb]
        scale = 1.0 / math.sqrt(q.shape[-1])
        memory = torch.einsum("bhgld,hd->bhgl", q, self.memory_key)[..., None] * scale
        chosen, usable = [], []
        for begin in range(0, length, SELECTION_CHUNK):
            rows = slice(begin, begin + SELECTION_CHUNK)
            visible = (torch.arange(num_blocks, device=q.device)[None, :]
                       < query_block[rows, None])  # ends before the query's block
            visible = visible[None] & holds_item[:, None]  # [B, chunk, nb]
            logits = torch.einsum("bhgld,bhnd->bhgln", q[:, :, :, rows], keys) * scale
            logits = logits.masked_fill(~visible[:, None, None], -torch.inf)
            probs = torch.cat([memory[:, :, :, rows], logits], -1).softmax(-1)[..., 1:]
            score = probs.mean(2).masked_fill(~visible[:, None], -1.0)  # [B, Hkv, chunk, nb]
            top = torch.topk(score, min(self.top_k, num_blocks), dim=-1)
            chosen.append(top.indices)
            usable.append(top.values >= 0)
        blocks, ok = torch.cat(chosen, 2), torch.cat(usable, 2)
        missing = self.top_k - blocks.shape[-1]
        if missing:  # fewer blocks than top_k in the whole sequence
            blocks = F.pad(blocks, (0, missing))
            ok = F.pad(ok, (0, missing), value=False)
        return blocks, ok

    def short_offsets(self, length: int, device: torch.device) -> Tensor:
        """``0 .. local - 1`` and every power of two below ``length``, ascending."""
        powers = {1 << p for p in range(max(1, length).bit_length()) if (1 << p) < length}
        return torch.tensor(sorted(set(range(min(self.local, length))) | powers),
                            device=device)

    # ------------------------------------------------------------------ gather path
    def gather_branches(self, q: Tensor, k: Tensor, v: Tensor, blocks: Tensor,
                        usable: Tensor) -> tuple[Tensor, Tensor]:
        """Both branches, ``GATHER_CHUNK`` queries at a time. Under autograd each chunk is
        checkpointed: backward gathers its keys again instead of keeping every query's
        gathered keys and values (``(top_k + 1) * block + local + log2 L`` of them, which
        would cost more than the dense scores at head_dim 16)."""
        length = q.shape[3]
        positions = torch.arange(length, device=q.device)
        longs, shorts = [], []
        for begin in range(0, length, GATHER_CHUNK):
            rows = slice(begin, begin + GATHER_CHUNK)
            inputs = (q[:, :, :, rows], k, v, blocks[:, :, rows], usable[:, :, rows],
                      positions[rows])
            if torch.is_grad_enabled():
                long, short = checkpoint(self.gather_rows, *inputs, use_reentrant=False)
            else:
                long, short = self.gather_rows(*inputs)
            longs.append(long)
            shorts.append(short)
        return torch.cat(longs, 3), torch.cat(shorts, 3)

    def gather_rows(self, q: Tensor, k: Tensor, v: Tensor, blocks: Tensor, usable: Tensor,
                    positions: Tensor) -> tuple[Tensor, Tensor]:
        """Long and short branch of the queries at ``positions`` (``q``'s rows)."""
        return (self.long_gather(q, k, v, blocks, usable, positions),
                self.short_gather(q, k, v, positions))

    def long_gather(self, q: Tensor, k: Tensor, v: Tensor, blocks: Tensor, usable: Tensor,
                    positions: Tensor) -> Tensor:
        batch, heads, length, _ = k.shape
        within = torch.arange(self.block, device=k.device)
        selected = (blocks[..., None] * self.block + within).flatten(-2)
        selected_ok = usable[..., None].expand(-1, -1, -1, -1, self.block).flatten(-2)
        own = (positions // self.block * self.block)[:, None] + within  # [rows, block]
        own_ok = own <= positions[:, None]
        # Slots masked out below may point past the end (an unusable block, the own block's
        # tail); any in-range index does for them.
        index = torch.cat([selected, own.expand(batch, heads, -1, -1)], -1).clamp(max=length - 1)
        allowed = torch.cat([selected_ok, own_ok.expand(batch, heads, -1, -1)], -1)
        return masked_attention(q, gather_keys(k, index), gather_keys(v, index), allowed)

    def short_gather(self, q: Tensor, k: Tensor, v: Tensor, positions: Tensor) -> Tensor:
        batch, heads, length, _ = k.shape
        index = positions[:, None] - self.short_offsets(length, k.device)  # [rows, nO]
        allowed = (index >= 0)[None, None]
        index = index.clamp(min=0).expand(batch, heads, -1, -1)
        return masked_attention(q, gather_keys(k, index), gather_keys(v, index), allowed)

    # ------------------------------------------------------------------ reference path
    def long_reference(self, q: Tensor, k: Tensor, v: Tensor, blocks: Tensor,
                       usable: Tensor) -> Tensor:
        length = k.shape[2]
        num_blocks = -(-length // self.block)
        chosen = torch.zeros(*blocks.shape[:3], num_blocks + 1, dtype=torch.bool,
                             device=k.device)
        # Unusable slots go to the spare column num_blocks, dropped below.
        chosen.scatter_(-1, torch.where(usable, blocks, num_blocks), True)
        token_block = torch.arange(length, device=k.device) // self.block
        allowed = chosen[..., :num_blocks][..., token_block]  # [B, Hkv, L, L]
        own = (token_block[None, :] == token_block[:, None]) & causal_mask(length, k.device)
        return dense_attention(q, k, v, allowed | own)

    def short_reference(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        length = k.shape[2]
        position = torch.arange(length, device=k.device)
        distance = position[:, None] - position[None, :]
        power_of_two = (distance > 0) & ((distance & (distance - 1)) == 0)
        allowed = (distance >= 0) & ((distance < self.local) | power_of_two)
        return dense_attention(q, k, v, allowed[None, None])
