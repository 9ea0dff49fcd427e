"""Shared parts of the CTR models: batches, the field-embedding layer, the MLP tower, the base.

A model sees its embedding tables only through ``FieldEmbeddings``: whichever compression method
each field uses, and whether several fields share one table, it receives ``Tensor[B, F, D]``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from slimrec.config import FrozenConfig
from slimrec.data.fields import FieldData
from slimrec.embeddings.base import EmbeddingTable
from slimrec.errors import ConfigError
from slimrec.models.base import RecModel
from slimrec.models.layers import low_rank_layers, replace_with_low_rank


@dataclass(frozen=True)
class CTRBatch:
    """One batch of ``B`` rows.

    ``ids``: LongTensor ``[B, S]`` of the single-valued fields; ``bags[name] = (values,
    segments)``: LongTensor ``[N]`` ids of a multi-hot field and the row (0..B-1) each belongs
    to; ``labels``: FloatTensor ``[B]`` of 0/1.
    """

    ids: Tensor
    bags: Mapping[str, tuple[Tensor, Tensor]]
    labels: Tensor

    @property
    def size(self) -> int:
        return len(self.labels)

    def slice(self, begin: int, end: int) -> CTRBatch:
        """Rows ``begin:end`` (a rank's share of a data-parallel batch)."""
        bags = {}
        for name, (values, segments) in self.bags.items():
            keep = (segments >= begin) & (segments < end)
            bags[name] = (values[keep], segments[keep] - begin)
        return CTRBatch(self.ids[begin:end], bags, self.labels[begin:end])


class FieldTensors:
    """``FieldData`` as torch tensors (int32 kept compact), cut into ``CTRBatch``es by row."""

    def __init__(self, data: FieldData) -> None:
        self.ids = torch.from_numpy(data.ids)
        self.labels = torch.from_numpy(data.labels).to(torch.float32)
        self.bags = {name: (torch.from_numpy(offsets), torch.from_numpy(values))
                     for name, (offsets, values) in data.bags.items()}

    def batch(self, rows: Tensor) -> CTRBatch:
        """The batch of ``rows`` (LongTensor ``[B]``); multi-hot values gathered without loops."""
        bags = {}
        for name, (offsets, values) in self.bags.items():
            starts = offsets[rows]
            lengths = offsets[rows + 1] - starts
            segments = torch.repeat_interleave(torch.arange(len(rows)), lengths)
            first = torch.cumsum(lengths, 0) - lengths
            positions = torch.arange(int(lengths.sum())) + torch.repeat_interleave(
                starts - first, lengths)
            bags[name] = (values[positions].long(), segments)
        return CTRBatch(self.ids[rows].long(), bags, self.labels[rows])


@dataclass(frozen=True)
class FieldSlot:
    """Where a field's ids go: table ``table`` at ``offset`` (0 unless the table is shared)."""

    name: str
    num_embeddings: int
    multi_hot: bool
    table: str
    offset: int = 0


class FieldEmbeddings(nn.Module):
    """Looks every field of a batch up in its table: ``CTRBatch -> Tensor[B, F, D]``.

    Fields are in data order. A multi-hot field is the mean of its rows (an EmbeddingBag in
    "mean" mode built from the table's forward and a segment sum). A table may serve several
    fields (Unified Embedding); their ids are then offset into the table's id space.
    """

    def __init__(self, slots: Sequence[FieldSlot], tables: Mapping[str, EmbeddingTable],
                 notes: Mapping[str, str] | None = None) -> None:
        super().__init__()
        self.notes = dict(notes or {})  # field -> why its table is not the requested method
        dims = {table.embedding_dim for table in tables.values()}
        if len(dims) != 1:
            raise ConfigError(f"every field table must have the same embedding_dim; got {dims}.")
        self.slots = tuple(slots)
        self.tables = nn.ModuleDict(dict(tables))
        self.embedding_dim = dims.pop()
        single = [slot for slot in self.slots if not slot.multi_hot]
        # Single-valued fields of one table are looked up in one call: their columns in
        # ``batch.ids``, their offsets, and where their outputs go among the F fields.
        self._groups = []
        for name in self.tables:
            members = [k for k, slot in enumerate(single) if slot.table == name]
            if members:
                self._groups.append((name, torch.tensor(members),
                                     torch.tensor([single[k].offset for k in members]),
                                     [self.slots.index(single[k]) for k in members]))
        self._bags = [(position, slot) for position, slot in enumerate(self.slots)
                      if slot.multi_hot]
        placed = [p for *_, positions in self._groups for p in positions]
        placed += [position for position, _ in self._bags]
        self._order = torch.argsort(torch.tensor(placed))

    @property
    def num_fields(self) -> int:
        return len(self.slots)

    def forward(self, batch: CTRBatch) -> Tensor:
        pieces = []
        for name, columns, offsets, _ in self._groups:
            pieces.append(self.tables[name](batch.ids[:, columns] + offsets))
        for _, slot in self._bags:
            values, segments = batch.bags[slot.name]
            rows = self.tables[slot.table](values + slot.offset)
            pooled = rows.new_zeros(batch.size, self.embedding_dim)
            pooled.index_add_(0, segments, rows)
            counts = torch.bincount(segments, minlength=batch.size).clamp(min=1)
            pieces.append((pooled / counts[:, None]).unsqueeze(1))
        return torch.cat(pieces, dim=1)[:, self._order]

    # ------------------------------------------------------------------ table hooks and memory
    def regularizer(self) -> Tensor | None:
        terms = [term for table in self.tables.values()
                 if (term := table.regularizer()) is not None]
        return torch.stack(terms).sum() if terms else None

    def after_step(self, step: int) -> None:
        for table in self.tables.values():
            table.after_step(step)

    def memory_bytes(self) -> int:
        return sum(table.memory_bytes() for table in self.tables.values())

    def full_fp32_bytes(self) -> int:
        """Bytes of one uncompressed fp32 table per field."""
        return sum(slot.num_embeddings * self.embedding_dim * 4 for slot in self.slots)

    def describe(self) -> list[dict[str, Any]]:
        """Per-field table, method and bytes (a shared table's bytes are listed once)."""
        seen, rows = set(), []
        for slot in self.slots:
            table = self.tables[slot.table]
            rows.append({"field": slot.name, "num_embeddings": slot.num_embeddings,
                         "table": slot.table, "method": table.config.method,
                         "memory_bytes": 0 if slot.table in seen else table.memory_bytes(),
                         "full_fp32_bytes": slot.num_embeddings * self.embedding_dim * 4,
                         **({"note": self.notes[slot.name]} if slot.name in self.notes else {})})
            seen.add(slot.table)
        return rows


class CTRModel(RecModel):
    """Base of CTR models: ``forward(batch) -> logits [B]`` = ``head(embeddings(batch))``.

    Subclasses set ``name`` and ``config_class`` and implement ``head`` on the field embeddings
    ``Tensor[B, F, D]``. Everything outside ``self.embeddings`` is dense.
    """

    task: ClassVar[str] = "ctr"

    def __init__(self, embeddings: FieldEmbeddings, config: FrozenConfig) -> None:
        super().__init__()
        self.embeddings = embeddings
        self.config = config

    @classmethod
    def from_params(cls, embeddings: FieldEmbeddings, params: Mapping[str, Any]) -> CTRModel:
        return cls(embeddings, cls.parse_params(params))

    def head(self, embedded: Tensor) -> Tensor:
        raise NotImplementedError

    def forward(self, batch: CTRBatch) -> Tensor:
        return self.head(self.embeddings(batch))

    def table_report(self) -> list[dict[str, Any]]:
        return self.embeddings.describe()

    def artifact_info(self) -> dict[str, Any]:
        return {"fields": [asdict(slot) for slot in self.embeddings.slots],
                "dense_low_rank": low_rank_layers(self)}

    @classmethod
    def from_artifact(cls, tables: dict[str, EmbeddingTable], dense: dict[str, Tensor],
                      config: FrozenConfig, info: Mapping[str, Any]) -> CTRModel:
        prefix = "embeddings.tables."
        embeddings = FieldEmbeddings([FieldSlot(**slot) for slot in info["fields"]],
                                     {name[len(prefix):]: table for name, table in tables.items()})
        model = cls(embeddings, config)
        if "search_decision" in info:  # the searched structure, before its weights load
            model.apply_search_decision(info["search_decision"])
        replace_with_low_rank(model, info["dense_low_rank"])
        model.load_parts(tables, dense)
        return model
