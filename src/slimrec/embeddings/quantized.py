"""``quantized``: low-precision rows with a per-row scale and zero point, packed into bytes.

Storage (``PackedQuantizedTable``, the inference form of both paths below): row ``i`` is
``codes[i] * scale[i] + offset[i]`` with unsigned ``bits``-bit codes (``bits`` in 8, 4, 2, 1)
packed ``8 // bits`` to a byte (low bits first, rows padded to whole bytes), and ``scale`` and
``offset`` stored as **float16** (as FBGEMM/TorchRec's fused row-wise formats do)::

    bytes = n * ceil(d * bits / 8) + n * 2 (scale) + n * 2 (offset)

The fp16 rounding of ``scale``/``offset`` is part of the stored table: codes are computed against
the rounded values, so nothing is lost beyond the rounding of the codes themselves.

Two ways to get there:
- **post-training** (``QuantizedTableConfig.from_trained``, built from the float table as
  TorchRec's ``from_float``): min-max per row, ``offset = min``, ``scale = (max - min) / (2**bits
  - 1)``;
- **quantization-aware training** (``QuantizedTable``, what ``--embedding quantized`` trains):
  fp32 shadow weights plus a learnable per-row step size (in log space) and offset (LSQ+,
  Bhalgat et al. 2020; LSQ, Esser et al. 2020; ALPT, Li et al. 2023 for embeddings). The forward
  pass rounds with a straight-through estimator using the fp16-rounded step and offset, so the
  trained table scores exactly like its packed export, which ``memory_bytes()`` measures.

The budget solver picks the most bits that fit; even 1 bit per entry needs ``n * (ceil(d/8) + 4)``
bytes, below which the budget is too small.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal, Self

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor, nn

from slimrec.config import parse_config
from slimrec.embeddings.base import EmbeddingTable, gaussian_rows, row_gradient
from slimrec.embeddings.sizing import fixed_choices
from slimrec.embeddings.spec import SparseGrad, TableConfig, TableStats, budget_too_small, register
from slimrec.errors import ConfigError

BITS = (8, 4, 2, 1)
# Smallest normal float16: steps below it would lose precision (or flush to zero) when stored.
_MIN_STEP = float(torch.finfo(torch.float16).tiny)
_FP16_MAX = float(torch.finfo(torch.float16).max)


def packed_bytes(num_embeddings: int, embedding_dim: int, bits: int) -> int:
    """Inference bytes: packed codes + fp16 scale + fp16 offset per row."""
    return num_embeddings * (math.ceil(embedding_dim * bits / 8) + 4)


def choose_bits(config_cls: type[QuantizedTableConfig], budget_bytes: int, num_embeddings: int,
                embedding_dim: int, params: Mapping[str, Any]) -> QuantizedTableConfig:
    """The config with the most bits whose packed table fits ``budget_bytes``."""
    config = fixed_choices(config_cls, params, free=("bits",))
    for bits in BITS:
        if packed_bytes(num_embeddings, embedding_dim, bits) <= budget_bytes:
            return config.model_copy(update={"bits": bits})
    raise budget_too_small(config_cls.method, budget_bytes,
                           packed_bytes(num_embeddings, embedding_dim, BITS[-1]))


def pack_codes(codes: Tensor, bits: int) -> Tensor:
    """``uint8 (n, d)`` codes below ``2**bits`` -> ``uint8 (n, ceil(d * bits / 8))``."""
    per_byte = 8 // bits
    padding = (-codes.shape[1]) % per_byte
    grouped = F.pad(codes, (0, padding)).reshape(codes.shape[0], -1, per_byte)
    shifts = torch.arange(per_byte, device=codes.device, dtype=torch.uint8) * bits
    return (grouped << shifts).sum(dim=-1, dtype=torch.uint8)


def unpack_codes(packed: Tensor, bits: int, embedding_dim: int) -> Tensor:
    """``uint8 (..., ceil(d * bits / 8))`` -> ``uint8 (..., d)``, the inverse of ``pack_codes``."""
    per_byte = 8 // bits
    shifts = torch.arange(per_byte, device=packed.device, dtype=torch.uint8) * bits
    codes = (packed.unsqueeze(-1) >> shifts) & (2 ** bits - 1)
    return codes.reshape(*packed.shape[:-1], -1)[..., :embedding_dim]


def _stored_step(step: Tensor) -> Tensor:
    """``step`` as the packed table stores it: at least ``_MIN_STEP``, rounded to float16."""
    return step.clamp_min(_MIN_STEP).half().float()


def _to_fp16_grid(values: Tensor) -> Tensor:
    """``values`` rounded to float16 and back, with the gradient of the identity."""
    return values + (values.half().float() - values).detach()


class _FakeQuantizedLookup(torch.autograd.Function):
    """Rows ``clamp(round((w - o) / s), 0, L) * s + o`` of ids, with the gradients that
    autograd gives the same formula written with a straight-through rounding, in closed form.

    ``s = fp16(max(exp(log_step), tiny))`` and ``o = fp16(offset)``, rounded with identity
    gradients. With ``v = (w - o) / s`` and ``inside = 0 <= v <= L`` (torch.clamp passes the
    gradient at its bounds too), ``dy/dw = inside``, ``dy/ds = q - inside * v`` and ``dy/do =
    1 - inside``. Written as separate ops, autograd records about fifteen nodes per lookup and
    replays them backward; in closed form a lookup with its backward is 15-30% faster (a QAT
    epoch of MF on ML-1M stays several times the full table's: the elementwise passes remain).
    """

    @staticmethod
    def forward(ctx, weight: Tensor, log_step: Tensor, offset: Tensor, ids: Tensor,
                levels: int, sparse: bool) -> Tensor:
        flat = ids.reshape(-1)
        raw_step = log_step.index_select(0, flat).exp()
        step = _stored_step(raw_step)
        low = offset.index_select(0, flat).half().float()
        scaled = (weight.index_select(0, flat) - low) / step
        codes = torch.round(scaled).clamp_(0, levels)
        inside = (scaled >= 0) & (scaled <= levels)
        ctx.save_for_backward(flat, raw_step, scaled, codes, inside)
        ctx.shapes, ctx.sparse = (weight.shape[0], ids.shape), sparse
        return (codes * step + low).reshape(*ids.shape, weight.shape[1])

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, ...]:
        flat, raw_step, scaled, codes, inside = ctx.saved_tensors
        (num_rows, _), sparse = ctx.shapes, ctx.sparse
        grad = grad.reshape(len(flat), -1)
        grad_weight = grad * inside
        grad_step = (grad * (codes - scaled * inside)).sum(1, keepdim=True)
        grad_log_step = grad_step * raw_step * (raw_step >= _MIN_STEP)
        grad_offset = (grad - grad_weight).sum(1, keepdim=True)
        return (row_gradient(grad_weight, flat, num_rows, sparse),
                row_gradient(grad_log_step, flat, num_rows, sparse),
                row_gradient(grad_offset, flat, num_rows, sparse), None, None, None)


def _check_fp16_range(weight: Tensor) -> None:
    largest = float(weight.abs().max()) if weight.numel() else 0.0
    if largest > _FP16_MAX / 2:
        raise ConfigError(f"quantized tables store scales and offsets in float16, which cannot "
                          f"represent weights of magnitude {largest:.3g} (limit "
                          f"{_FP16_MAX / 2:.3g}); rescale the table before quantizing.")


@register
class QuantizedTableConfig(TableConfig):
    """Packed ``bits``-bit codes with fp16 per-row scale and offset."""

    method = "quantized"
    bits: Literal[8, 4, 2, 1] = Field(8, description="bits per entry; the budget solver sets it")
    init_std: float = Field(0.1, gt=0)
    sparse_grad: SparseGrad = False

    def table_bytes(self, num_embeddings: int, embedding_dim: int) -> int:
        """Exact ``memory_bytes()`` of the packed table."""
        return packed_bytes(num_embeddings, embedding_dim, self.bits)

    def build(self, num_embeddings: int, embedding_dim: int, stats: TableStats | None,
              seed: int) -> QuantizedTable:
        return QuantizedTable(num_embeddings, embedding_dim, self, seed)

    @classmethod
    def for_budget(cls, budget_bytes: int, num_embeddings: int, embedding_dim: int,
                   stats: TableStats | None, params: Mapping[str, Any]) -> Self:
        return choose_bits(cls, budget_bytes, num_embeddings, embedding_dim, params)

    @classmethod
    def from_trained(cls, table: EmbeddingTable, budget_bytes: int | None,
                     params: Mapping[str, Any]) -> PackedQuantizedTable:
        """Post-training min-max quantization of ``table`` (any method, read through
        ``iter_rows`` chunk by chunk) to the most bits that fit ``budget_bytes``."""
        n, d = table.num_embeddings, table.embedding_dim
        if budget_bytes is None:
            config = parse_config(cls, params, where=cls.__name__)
        else:
            config = choose_bits(cls, budget_bytes, n, d, params)
        levels = 2 ** config.bits - 1
        codes, scales, offsets = [], [], []
        with torch.no_grad():
            for _, rows in table.iter_rows():
                rows = rows.float()
                _check_fp16_range(rows)
                low = rows.min(dim=1, keepdim=True).values.half().float()
                step = _stored_step((rows.max(dim=1, keepdim=True).values - low) / levels)
                codes.append(pack_codes(quantize(rows, step, low, levels), config.bits))
                scales.append(step.squeeze(1).half())
                offsets.append(low.squeeze(1).half())
        return PackedQuantizedTable(n, d, config, torch.cat(codes), torch.cat(scales),
                                    torch.cat(offsets))


def quantize(weight: Tensor, step: Tensor, offset: Tensor, levels: int) -> Tensor:
    """Codes ``clamp(round((w - offset) / step), 0, levels)`` as uint8; ``step``, ``offset``
    broadcast against ``weight``."""
    return torch.clamp(torch.round((weight - offset) / step), 0, levels).to(torch.uint8)


class PackedQuantizedTable(EmbeddingTable):
    """Inference table: buffers ``codes: uint8 (n, ceil(d * bits / 8))``, ``scale: float16
    (n,)``, ``offset: float16 (n,)``; ``config.bits`` tells how codes are packed."""

    def __init__(self, num_embeddings: int, embedding_dim: int, config: QuantizedTableConfig,
                 codes: Tensor, scale: Tensor, offset: Tensor) -> None:
        super().__init__(num_embeddings, embedding_dim, config)
        self.register_buffer("codes", codes)
        self.register_buffer("scale", scale)
        self.register_buffer("offset", offset)

    @classmethod
    def from_state(cls, config: QuantizedTableConfig, num_embeddings: int, embedding_dim: int,
                   state: dict[str, Tensor]) -> PackedQuantizedTable:
        return cls(num_embeddings, embedding_dim, config, state["codes"], state["scale"],
                   state["offset"])

    def lookup(self, ids: Tensor) -> Tensor:
        codes = unpack_codes(self.codes[ids], self.config.bits, self.embedding_dim)
        return (codes.float() * self.scale[ids].float().unsqueeze(-1)
                + self.offset[ids].float().unsqueeze(-1))

    def score_rows(self, queries: Tensor, out: Tensor | None = None,
                   chunk_size: int = 8192) -> Tensor:
        """``q . (scale * c + offset) = scale * (q . c) + offset * sum(q)``: the codes are
        unpacked chunk by chunk (contiguous slices, no gather) and the affine map is applied to
        the ``[B, chunk]`` scores, not to the ``[chunk, dim]`` rows."""
        if out is None:
            out = queries.new_empty(len(queries), self.num_embeddings)
        totals = queries.sum(1, keepdim=True)
        for start in range(0, self.num_embeddings, chunk_size):
            stop = min(start + chunk_size, self.num_embeddings)
            codes = unpack_codes(self.codes[start:stop], self.config.bits, self.embedding_dim)
            scores = torch.mm(queries, codes.to(queries.dtype).T)
            scores.mul_(self.scale[start:stop].to(queries.dtype))
            scores.addcmul_(totals, self.offset[start:stop].to(queries.dtype).unsqueeze(0))
            out[:, start:stop] = scores
        return out


class QuantizedTable(EmbeddingTable):
    """Quantization-aware training (LSQ+ step and offset, stored exactly as fp16).

    Parameters: ``weight: (n, d)`` fp32 shadow weights, ``log_step: (n, 1)`` and ``offset: (n,
    1)``, min-max initialised. Forward: ``clamp(round_ste((w - offset) / step), 0, 2**bits - 1) *
    step + offset`` with ``step = exp(log_step)``. LSQ learns the step itself and scales its
    gradient by ``1 / sqrt(d * levels)`` for SGD; under Adam a gradient scale changes nothing,
    while a fixed learning rate on the raw step moves a fine 8-bit step by a large fraction of
    itself each update. Learning the step in log space makes every update relative.
    """

    def __init__(self, num_embeddings: int, embedding_dim: int,
                 config: QuantizedTableConfig, seed: int = 0) -> None:
        super().__init__(num_embeddings, embedding_dim, config)
        self.levels = 2 ** config.bits - 1
        generator = torch.Generator().manual_seed(seed)
        weight = gaussian_rows(num_embeddings, embedding_dim, config.init_std, generator)
        low = weight.min(dim=1, keepdim=True).values
        high = weight.max(dim=1, keepdim=True).values
        self.weight = nn.Parameter(weight)
        self.log_step = nn.Parameter(((high - low) / self.levels).clamp_min(_MIN_STEP).log())
        self.offset = nn.Parameter(low)

    @staticmethod
    def _stored(log_step: Tensor, offset: Tensor) -> tuple[Tensor, Tensor]:
        """Step and offset at the values the packed table stores (fp16), identity gradients."""
        return _to_fp16_grid(log_step.exp().clamp_min(_MIN_STEP)), _to_fp16_grid(offset)

    def lookup(self, ids: Tensor) -> Tensor:
        return _FakeQuantizedLookup.apply(self.weight, self.log_step, self.offset, ids,
                                          self.levels, self.config.sparse_grad)

    def sparse_parameters(self) -> list[nn.Parameter]:
        return [self.weight, self.log_step, self.offset] if self.config.sparse_grad else []

    @torch.no_grad()
    def for_inference(self, chunk_size: int = 65536) -> PackedQuantizedTable:
        """The packed table, quantised ``chunk_size`` rows at a time: the temporaries of a
        whole-table pass would be several times the fp32 weights (7 GB at 10M x 64)."""
        step, offset = self._stored(self.log_step, self.offset)
        codes = torch.cat([
            pack_codes(quantize(self.weight[begin:begin + chunk_size],
                                step[begin:begin + chunk_size],
                                offset[begin:begin + chunk_size], self.levels),
                       self.config.bits)
            for begin in range(0, self.num_embeddings, chunk_size)])
        return PackedQuantizedTable(self.num_embeddings, self.embedding_dim, self.config, codes,
                                    step.squeeze(1).half(), offset.squeeze(1).half())
