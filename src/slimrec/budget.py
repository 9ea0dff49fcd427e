"""Memory budgets, with one meaning everywhere.

A budget bounds the bytes of ALL the embedding tables of a model, and is written either as

* a FRACTION of the fp32 bytes of all those tables: ``0.1``, ``"0.1"`` or ``"10%"`` (in (0, 1],
  i.e. above 0% and at most 100%), or
* a TOTAL size with a unit: ``"2MB"``, ``"512KiB"``, ``"900000B"`` (units ``B``, ``KB``, ``MB``,
  ``GB``, ``KiB``, ``MiB``, ``GiB``, case-insensitive).

One allocator (``slimrec.embeddings.allocate``) splits it over the tables. Anything else is a
``BudgetError`` naming the value: a bare number above 1 (``4096`` is not a byte count; write
``"4096B"``), a percentage above 100%, zero or less, an unknown unit, NaN/inf, a bool.

``BudgetSetting`` is the type of a budget in a pydantic config: it parses what the user wrote
and serializes back to the same text, so a config's ``model_dump()`` and YAML round-trip.
"""

from __future__ import annotations

import math
import numbers
import re
from dataclasses import dataclass, field
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer
from pydantic_core import core_schema

from slimrec.errors import BudgetError

_UNITS = {
    "b": 1,
    "kb": 10**3, "mb": 10**6, "gb": 10**9,
    "kib": 2**10, "mib": 2**20, "gib": 2**30,
}
_UNIT_NAMES = "B, KB, MB, GB, KiB, MiB, GiB"
_NUMBER = r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:e[+-]?[0-9]+)?"
_SIZE = re.compile(rf"^({_NUMBER})\s*([a-z]*)$", re.IGNORECASE)
_PERCENT = re.compile(rf"^({_NUMBER})\s*%$", re.IGNORECASE)

ACCEPTED_FORMS = (
    "a fraction of the fp32 bytes of all the embedding tables, in (0, 1]: 0.1, '0.1' or '10%' "
    "(at most 100%); or a total size with a unit: '2MB', '512KiB', '900000B' "
    f"(units {_UNIT_NAMES}, any case)"
)


@dataclass(frozen=True)
class Budget:
    """A memory budget: a fraction of the full fp32 bytes, or a total number of bytes.

    ``text`` is the budget as the user wrote it (``"10%"``, ``"2MB"``, ``"0.1"``); it is what
    ``str()`` prints and what configs serialize to. It takes no part in equality:
    ``parse_budget("10%") == parse_budget(0.1)``.
    """

    fraction: float | None = None
    num_bytes: int | None = None
    text: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if (self.fraction is None) == (self.num_bytes is None):
            raise BudgetError("Budget needs exactly one of fraction or num_bytes.")
        if self.fraction is not None:
            if isinstance(self.fraction, bool) or not isinstance(self.fraction, numbers.Real):
                raise BudgetError(f"Budget fraction must be a number; got {self.fraction!r}.")
            if not (math.isfinite(self.fraction) and 0.0 < self.fraction <= 1.0):
                raise BudgetError(f"Budget fraction must be in (0, 1]; got {self.fraction!r}.")
            object.__setattr__(self, "fraction", float(self.fraction))
        if self.num_bytes is not None:
            if isinstance(self.num_bytes, bool) or not isinstance(self.num_bytes, numbers.Integral):
                raise BudgetError(f"Budget bytes must be an integer; got {self.num_bytes!r}.")
            if self.num_bytes < 1:
                raise BudgetError(f"Budget bytes must be >= 1; got {self.num_bytes!r}.")
            object.__setattr__(self, "num_bytes", int(self.num_bytes))
        if not self.text:
            default = f"{self.fraction:g}" if self.fraction is not None else f"{self.num_bytes}B"
            object.__setattr__(self, "text", default)

    def resolve(self, full_bytes: int) -> int:
        """Bytes allowed, given the fp32 bytes of the full tables the budget covers."""
        if self.num_bytes is not None:
            return self.num_bytes
        return int(self.fraction * full_bytes)

    def __str__(self) -> str:
        return self.text

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Any) -> core_schema.CoreSchema:
        # Inside pydantic a Budget is an opaque value: ``BudgetSetting`` parses it beforehand.
        return core_schema.is_instance_schema(cls)

    @classmethod
    def __get_pydantic_json_schema__(cls, schema: Any, handler: Any) -> dict[str, Any]:
        return {"anyOf": [{"type": "number"}, {"type": "string"}],
                "description": f"memory budget: {ACCEPTED_FORMS}"}


def _invalid(value: object, reason: str) -> BudgetError:
    return BudgetError(f"invalid budget {value!r}: {reason}. A budget is {ACCEPTED_FORMS}.")


def _fraction(value: object, number: float, text: str) -> Budget:
    """``number`` read as a fraction (a bare number, or a percentage already divided by 100)."""
    if not math.isfinite(number):
        raise _invalid(value, "it is not a finite number")
    if number <= 0:
        raise _invalid(value, "it is not above zero")
    if number > 1:
        raise _invalid(value, "a fraction cannot exceed 1 (100%)")
    return Budget(fraction=float(number), text=text)


def _above_one(value: object, number: float) -> BudgetError:
    hint = f"for a size give a unit, e.g. '{int(number)}B'" if number.is_integer() else \
        "give a fraction in (0, 1] or a size with a unit"
    return _invalid(value, f"a bare number above 1 is neither a fraction nor a size ({hint})")


def parse_budget(value: str | float | int | Budget) -> Budget:
    """Parse a budget written as a fraction (``0.1``, ``"0.1"``, ``"10%"``) or a total size
    with a unit (``"2MB"``, ``"512KiB"``, ``"900000B"``); raise ``BudgetError`` naming the
    value and listing the accepted forms otherwise. A ``Budget`` is returned as is."""
    if isinstance(value, Budget):
        return value
    if isinstance(value, bool) or type(value).__name__ == "bool_":  # numpy bools too
        raise _invalid(value, "a bool is not a budget")
    if isinstance(value, numbers.Real):
        number = float(value)
        if math.isfinite(number) and number > 1:
            raise _above_one(value, number)
        return _fraction(value, number, str(value))
    if not isinstance(value, str):
        raise _invalid(value, f"expected a number or a string, not {type(value).__name__}")
    text = value.strip()
    if match := _PERCENT.match(text):
        percent = float(match.group(1))
        if math.isfinite(percent) and percent > 100:
            raise _invalid(value, "it is above 100%")
        return _fraction(value, percent / 100.0, text)
    match = _SIZE.match(text)
    if not match:
        if text.lower().rstrip("%").strip() in {"nan", "+nan", "-nan", "inf", "+inf", "-inf",
                                                "infinity", "+infinity", "-infinity"}:
            raise _invalid(value, "it is not a finite number")
        raise _invalid(value, "it is neither a fraction nor a size")
    number, unit = float(match.group(1)), match.group(2).lower()
    if unit == "":
        if math.isfinite(number) and number > 1:
            raise _above_one(value, number)
        return _fraction(value, number, text)
    if unit not in _UNITS:
        raise _invalid(value, f"unknown unit {match.group(2)!r}")
    if not math.isfinite(number):
        raise _invalid(value, "it is not a finite number")
    num_bytes = int(number * _UNITS[unit])
    if num_bytes < 1:
        raise _invalid(value, "a size must be at least 1 byte")
    return Budget(num_bytes=num_bytes, text=text)


def _validate_setting(value: Any) -> Budget | None:
    if value is None:
        return None
    try:
        return parse_budget(value)
    except BudgetError as error:
        # pydantic reports a ValueError's message (as "Value error, <message>"), and
        # ``parse_config`` appends "; got <value>." to it.
        raise ValueError(str(error).rstrip(".")) from None


def _serialize_setting(value: Budget | None) -> str | None:
    return None if value is None else value.text


BudgetSetting = Annotated[
    Budget | None,
    BeforeValidator(_validate_setting),
    PlainSerializer(_serialize_setting, return_type=str | None),
]
"""A budget field of a pydantic config: parsed by ``parse_budget``; dumps to the text written."""


def format_bytes(num_bytes: int) -> str:
    """Human-readable size, e.g. ``18.1 MiB``."""
    size = float(num_bytes)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")
