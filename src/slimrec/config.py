"""Typed, frozen, strict configuration: defaults, then a YAML file, then CLI overrides.

Config classes are pydantic models with ``frozen=True`` and ``extra="forbid"``; values are coerced
to the declared type (``"5e-4"`` from YAML becomes a float). Validation errors become a
``ConfigError`` that names the key, the constraint and the value, with a "did you mean".
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from slimrec.errors import ConfigError, did_you_mean

T = TypeVar("T", bound=BaseModel)


class FrozenConfig(BaseModel):
    """Base of every config: immutable, unknown keys rejected, types coerced."""

    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)


def _config_at(cls: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel]:
    """The config class of the mapping at ``loc`` below ``cls`` (``cls`` if not a config)."""
    found = cls
    for part in loc:
        field = found.model_fields.get(str(part))
        annotation = field.annotation if field else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return cls
        found = annotation
    return found


def _suggestions(cls: type[BaseModel]) -> list[str]:
    """Keys a typo may have meant: ``cls``'s, then those of its nested configs (a run config
    also takes its ``train`` keys at the top level)."""
    names = list(cls.model_fields)
    for field in cls.model_fields.values():
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            names += [name for name in field.annotation.model_fields if name not in names]
    return names


def _explain(error: ValidationError, cls: type[BaseModel], where: str) -> str:
    lines = []
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"]) or "(root)"
        if item["type"] == "extra_forbidden":
            owner = _config_at(cls, tuple(item["loc"][:-1]))
            hint = did_you_mean(str(item["loc"][-1]), _suggestions(owner))
            lines.append(f"{where}: unknown key {key!r}.{hint} Known keys: "
                         f"{', '.join(owner.model_fields)}.")
        elif item["type"] == "value_error":
            # Our own validators' messages: already complete sentences naming the value.
            message = item["msg"].removeprefix("Value error, ").rstrip(".")
            lines.append(f"{where}: {message}." if key == "(root)" else
                         f"{where}.{key}: {message}.")
        else:
            lines.append(f"{where}.{key} {item['msg'].lower()}; got {item.get('input')!r}.")
    return "\n".join(lines)


def parse_config(cls: type[T], values: Mapping[str, Any], where: str | None = None) -> T:
    """Validate ``values`` into ``cls``, raising ``ConfigError`` with a readable message."""
    where = where or cls.__name__
    try:
        return cls.model_validate(dict(values))
    except ValidationError as error:
        raise ConfigError(_explain(error, cls, where)) from None


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML (or JSON) mapping of settings."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} not found.")
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML ({error}).") from None
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise ConfigError(f"{path}: expected a mapping of settings, got {type(document).__name__}.")
    return document


def layered_config(cls: type[T], file: str | Path | None, overrides: Mapping[str, Any]) -> T:
    """Defaults, then ``file``, then the overrides that are not None (CLI flags)."""
    values: dict[str, Any] = read_config_file(file) if file else {}
    values.update({key: value for key, value in overrides.items() if value is not None})
    return parse_config(cls, values, where=str(file) if file else cls.__name__)


def deep_merge(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` updated by ``overrides``; nested mappings merge key by key (a flag such as
    ``--model-param num_layers=2`` changes one key of ``model_params``, not the whole dict)."""
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged
