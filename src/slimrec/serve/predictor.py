"""Click probabilities from a saved CTR model, for rows of raw field values.

    predictor = Predictor.load("runs/frappe_dcnv2")
    predictor.predict([{"user": "17", "item": "3", "daytime": "morning", ...}])

A row maps every field name to its value as the field's vocabulary stores it (``vocab.json``:
categorical values as text; a numeric Criteo column as its binned token, see
``slimrec.data.fields``), or to a list of values for a multi-hot field. A value outside the
vocabulary maps to the field's OOV row (id 0), as rare and unseen values did in training.

The rows are encoded into a ``FieldData`` and scored by ``slimrec.eval.ctr.predict``: the same
batches and the same forward pass as evaluation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from slimrec.data.fields import Field, FieldData
from slimrec.errors import ConfigError
from slimrec.eval.ctr import predict
from slimrec.models.ctr import CTRModel, FieldTensors
from slimrec.serve.artifact import Artifact, load_artifact

FieldValue = str | Sequence[str]


class Predictor:
    """A loaded CTR model and its field vocabularies, ready to score rows."""

    def __init__(self, model: CTRModel, manifest: dict[str, Any],
                 vocab: dict[str, Any], folder: Path | None = None) -> None:
        self.model = model
        self.manifest = manifest
        self.folder = folder
        vocabularies = vocab["fields"]
        # The model's field order: single-valued fields are the columns of ``ids`` in it.
        self.fields = tuple(Field(slot.name, np.asarray(vocabularies[slot.name], dtype=str),
                                  slot.multi_hot) for slot in model.embeddings.slots)

    @classmethod
    def load(cls, path: str | Path) -> Predictor:
        """Load a CTR model folder; checksums are verified and a foreign folder fails clearly."""
        return cls.from_artifact(load_artifact(path, task="ctr"))

    @classmethod
    def from_artifact(cls, artifact: Artifact) -> Predictor:
        """The predictor of a loaded CTR artifact."""
        return cls(artifact.model, artifact.manifest, artifact.vocab, artifact.folder)

    @property
    def field_names(self) -> list[str]:
        return [field.name for field in self.fields]

    def predict(self, rows: Sequence[Mapping[str, FieldValue]]) -> np.ndarray:
        """Click probabilities (float64 ``[len(rows)]``) of ``rows``, in the order given.

        A missing or unknown field is a ``ConfigError`` naming it and the row.
        """
        if not rows:
            return np.zeros(0)
        self._check_fields(rows)
        single = [field for field in self.fields if not field.multi_hot]
        ids = np.stack([field.encode([str(row[field.name]) for row in rows])
                        for field in single], axis=1) if single else np.zeros((len(rows), 0),
                                                                              dtype=np.int32)
        bags = {field.name: self._bag(field, [row[field.name] for row in rows])
                for field in self.fields if field.multi_hot}
        data = FieldData("request", self.fields, ids.astype(np.int32),
                         labels=np.zeros(len(rows), dtype=np.int8),
                         split=np.zeros(len(rows), dtype=np.int8), bags=bags)
        return predict(self.model, FieldTensors(data), np.arange(len(rows)))

    def _check_fields(self, rows: Sequence[Mapping[str, FieldValue]]) -> None:
        names = set(self.field_names)
        for number, row in enumerate(rows):
            missing = [name for name in self.field_names if name not in row]
            if missing:
                raise ConfigError(f"row {number}: missing field(s) {', '.join(missing)}; this "
                                  f"model needs {', '.join(self.field_names)}.")
            unknown = sorted(set(row) - names)
            if unknown:
                raise ConfigError(f"row {number}: unknown field(s) {', '.join(unknown)}; this "
                                  f"model's fields are {', '.join(self.field_names)}.")
            for field in self.fields:
                value = row[field.name]
                if not field.multi_hot and not isinstance(value, str | int | float):
                    raise ConfigError(f"row {number}: field {field.name!r} takes one value; "
                                      f"got {type(value).__name__}.")

    @staticmethod
    def _bag(field: Field, values: list[FieldValue]) -> tuple[np.ndarray, np.ndarray]:
        """``(offsets, ids)`` of a multi-hot field. A row with no values is the empty token,
        as an empty cell was encoded in training (its id, or the OOV id when it was rare)."""
        lists = [[value] if isinstance(value, str) else [str(v) for v in value] or [""]
                 for value in values]
        lengths = np.array([len(items) for items in lists], dtype=np.int64)
        ids = field.encode([item for items in lists for item in items])
        return np.concatenate([[0], np.cumsum(lengths)]), ids
