"""Multi-scenario multi-task rows: CTR fields, a scenario per row and one 0/1 label per task.

``MultiTaskData`` is a ``FieldData`` (the fields, their vocabularies, the seeded split; its
``labels`` are the first task's) plus ``labels`` ``(rows, tasks)`` and ``scenarios`` ``(rows,)``
codes into ``scenario_names``. ``multitask_from_frame`` encodes any table that has a scenario
column and the task columns (every other column is a categorical field, or a multi-hot one when
named in ``multi_hot``); ``load_multitask_data("ml-1m", data_dir)`` builds the MovieLens-1M
version of AutoIFS (WSDM 2026):

- scenarios by user age group: ``young`` (under 25), ``middle`` (25-44), ``senior`` (45 and
  over), from the ML-1M age codes 1/18, 25/35, 45/50/56;
- tasks ``click`` = rating > 3 and ``like`` = rating > 4;
- fields user, movie, gender, age, occupation, zip prefix (3 digits), genres (multi-hot);
- a seeded random 80/10/10 split of the rows.
"""

from __future__ import annotations

import gzip
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from slimrec.data.fields import FieldData, FieldSchema, encode_batches, frame_batches
from slimrec.data.readers import shorten
from slimrec.errors import DataError

ML1M_SCENARIOS = ("young", "middle", "senior")
ML1M_TASKS = ("click", "like")
_AGE_GROUPS = {"1": "young", "18": "young", "25": "middle", "35": "middle", "45": "senior",
               "50": "senior", "56": "senior"}


@dataclass(frozen=True)
class MultiTaskData:
    """Encoded rows (see the module docstring)."""

    fields: FieldData
    labels: np.ndarray  # int8 (rows, tasks)
    scenarios: np.ndarray  # int8 (rows,), codes into scenario_names
    task_names: tuple[str, ...]
    scenario_names: tuple[str, ...]

    @property
    def name(self) -> str:
        return self.fields.name

    def rows(self, split: str) -> np.ndarray:
        return self.fields.rows(split)

    def stats(self) -> dict[str, object]:
        base = self.fields.stats()
        counts = np.bincount(self.scenarios, minlength=len(self.scenario_names))
        return {**{key: base[key] for key in ("name", "rows", "train", "val", "test",
                                              "fields")},
                "scenarios": dict(zip(self.scenario_names, counts.tolist(), strict=True)),
                "positive_rate": dict(zip(self.task_names,
                                          self.labels.mean(0).round(4).tolist(),
                                          strict=True))}


@dataclass(frozen=True)
class MultiTaskSchema:
    """Which columns of a table are the scenario and the tasks; the rest are fields."""

    scenario: str = "scenario"
    tasks: tuple[str, ...] = ML1M_TASKS
    multi_hot: Mapping[str, str] = field(default_factory=dict)  # column -> separator
    scenario_order: tuple[str, ...] = ()  # scenario names in this order (default: sorted)
    user_field: str | None = None
    item_field: str | None = None


def _binary(frame: pl.DataFrame, column: str, lines: np.ndarray, source: str) -> np.ndarray:
    number = frame[column].cast(pl.Utf8).str.strip_chars().cast(pl.Float64, strict=False)
    bad = (number.is_null() | ~number.is_in([0.0, 1.0])).to_numpy()
    if bad.any():
        row = int(np.argmax(bad))
        raise DataError(f"{source} line {lines[row]}: task label {column!r} is "
                        f"{shorten(frame[column][row])}; task labels must be 0 or 1.")
    return number.to_numpy().astype(np.int8)


def _scenario_codes(values: pl.Series, order: Sequence[str], lines: np.ndarray, source: str
                    ) -> tuple[np.ndarray, tuple[str, ...]]:
    text = values.cast(pl.Utf8).str.strip_chars().fill_null("")
    empty = (text == "").to_numpy()
    if empty.any():
        raise DataError(f"{source} line {lines[int(np.argmax(empty))]}: the scenario "
                        f"{values.name!r} is empty; every row needs one.")
    found = sorted(set(text.unique().to_list()))
    names = tuple(order) if order else tuple(found)
    unknown = sorted(set(found) - set(names))
    if unknown:
        raise DataError(f"{source}: scenario values {unknown[:5]} are not among the "
                        f"scenarios {list(names)}.")
    codes = {name: k for k, name in enumerate(names)}
    return np.array([codes[value] for value in text.to_list()], dtype=np.int8), names


def multitask_from_frame(frame: pl.DataFrame, schema: MultiTaskSchema, name: str = "frame",
                         source: str = "frame", fractions: tuple[float, float, float] = (
                             0.8, 0.1, 0.1), seed: int = 0, min_count: int = 1,
                         lines: np.ndarray | None = None) -> MultiTaskData:
    """Encode ``frame`` (strings or numbers) as ``MultiTaskData``; ``lines`` name its rows in
    errors (default: 2.., below a header)."""
    lines = np.arange(2, frame.height + 2) if lines is None else lines
    missing = [column for column in (schema.scenario, *schema.tasks)
               if column not in frame.columns]
    if missing:
        role = "scenario" if schema.scenario in missing else "task"
        raise DataError(f"{source}: no {role} column {missing[0]!r}; the columns are "
                        f"{frame.columns}. Name the scenario column with scenario_column and "
                        "the label columns with task_columns.")
    if not schema.tasks:
        raise DataError(f"{source}: no task columns given; a multi-task run needs at least one.")
    labels = np.stack([_binary(frame, task, lines, source) for task in schema.tasks], axis=1)
    scenarios, names = _scenario_codes(frame[schema.scenario], schema.scenario_order, lines,
                                       source)
    features = [c for c in frame.columns if c not in (schema.scenario, *schema.tasks)]
    if not features:
        raise DataError(f"{source}: no feature columns besides the scenario and the tasks.")
    encoded = frame.select([pl.col(c).cast(pl.Utf8) for c in features]).with_columns(
        pl.Series("label", labels[:, 0].astype(str)))
    field_schema = FieldSchema(
        "label", tuple(c for c in features if c not in schema.multi_hot),
        multi_hot=tuple((c, sep) for c, sep in schema.multi_hot.items() if c in features),
        user_field=schema.user_field if schema.user_field in features else None,
        item_field=schema.item_field if schema.item_field in features else None)
    fields = encode_batches(name, source, frame_batches(encoded, lines), field_schema,
                            fractions, seed, min_count)
    return MultiTaskData(fields, labels, scenarios, tuple(schema.tasks), names)


# ---------------------------------------------------------------------- MovieLens-1M
def _dat_table(folder: Path, stem: str, columns: Sequence[str]) -> tuple[pl.DataFrame, Path]:
    """A ``::``-separated ML-1M file (plain or .gz, ISO-8859-1) as strings."""
    for path in (folder / f"{stem}.dat", folder / f"{stem}.dat.gz"):
        if path.is_file():
            break
    else:
        raise DataError(f"{folder}: no {stem}.dat (plain or .gz); pass --data-dir with the "
                        "folder that holds ml-1m/ (e.g. ../shared/data).")
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    lines = pl.Series(raw.decode("latin-1").splitlines())
    parts = lines.filter(lines != "").str.split("::")
    counts = parts.list.len().to_numpy()
    bad = np.flatnonzero(counts != len(columns))
    if bad.size:
        raise DataError(f"{path} line {bad[0] + 1}: expected {len(columns)} '::'-separated "
                        f"fields ({', '.join(columns)}), found {counts[bad[0]]}.")
    return pl.DataFrame([parts.list.get(k).alias(c) for k, c in enumerate(columns)]), path


def ml1m_frame(folder: str | Path) -> pl.DataFrame:
    """The ML-1M ratings joined with users and movies, as the AutoIFS table (module docs)."""
    folder = Path(folder)
    ratings, ratings_path = _dat_table(folder, "ratings", ("user", "movie", "rating", "time"))
    users, _ = _dat_table(folder, "users", ("user", "gender", "age", "occupation", "zip"))
    movies, _ = _dat_table(folder, "movies", ("movie", "title", "genres"))
    rating = ratings["rating"].cast(pl.Int64, strict=False)
    if rating.is_null().any():
        row = int(np.argmax(rating.is_null().to_numpy()))
        raise DataError(f"{ratings_path} line {row + 1}: rating {ratings['rating'][row]!r} is "
                        "not an integer.")
    frame = ratings.select("user", "movie").with_columns(
        (rating > 3).cast(pl.Int8).alias("click"), (rating > 4).cast(pl.Int8).alias("like"))
    frame = frame.join(users, on="user", how="left", maintain_order="left").join(
        movies.select("movie", "genres"), on="movie", how="left", maintain_order="left")
    unmatched = frame["age"].is_null() | frame["genres"].is_null()
    if unmatched.any():
        row = int(np.argmax(unmatched.to_numpy()))
        raise DataError(f"{ratings_path} line {row + 1}: user {frame['user'][row]} or movie "
                        f"{frame['movie'][row]} has no row in users.dat / movies.dat.")
    return frame.with_columns(
        pl.col("age").replace_strict(_AGE_GROUPS, default="unknown").alias("scenario"),
        pl.col("zip").str.slice(0, 3))


ML1M_SCHEMA = MultiTaskSchema("scenario", ML1M_TASKS, {"genres": "|"}, ML1M_SCENARIOS,
                              user_field="user", item_field="movie")


def load_multitask_data(name: str, data_dir: str | Path | None, seed: int = 0,
                        fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
                        min_count: int = 1) -> MultiTaskData:
    """The registered multi-task dataset ``name`` (kind "multitask" of the one registry)."""
    from slimrec.data.registry import cache_dir, dataset_info

    info = dataset_info(name, kind="multitask")
    folder = (Path(data_dir) if data_dir is not None else cache_dir()) / name
    frame = ml1m_frame(folder)
    return multitask_from_frame(frame, ML1M_SCHEMA, info.name, str(folder), fractions, seed,
                                min_count, lines=np.arange(1, frame.height + 1))
