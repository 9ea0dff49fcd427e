"""Command-line flags generated from the run configs, so every setting has a flag and
``--help`` shows its default.

One flag per field of every task's run config (the union: ``--task`` picks which applies);
``train`` fields are flattened (``--epochs``, ``--lr``); dict fields take repeatable
``KEY=VALUE`` pairs (``--model-param num_layers=3``); list fields take comma-separated values;
booleans get ``--flag/--no-flag``. Every flag defaults to "not given", so only what the user
typed overrides the config file. A few model settings also have a flag of their own
(``--attention blossom`` is ``--model-param attention=blossom``).
"""

from __future__ import annotations

import argparse
import types
import typing
from collections.abc import Iterator
from typing import Any

import yaml
from pydantic.fields import FieldInfo

from slimrec.config import read_config_file
from slimrec.errors import ConfigError
from slimrec.spine import load_config
from slimrec.tasks import TASKS, RunConfig

NESTED = ("train",)
# Dict fields take one KEY=VALUE per flag; the flag is named in the singular.
PAIR_FLAGS = {"model_params": "--model-param", "embedding_params": "--embedding-param"}
NOT_FLAGS = ("task",)  # added by the verbs that take it, with its choices
# Model settings with a flag of their own: flag -> (task, model, model_params key).
MODEL_PARAM_FLAGS = {"--attention": ("sequential", "sasrec", "attention")}


def _config_fields() -> Iterator[tuple[str, str | None, dict[str, FieldInfo]]]:
    """``(name, nested under, {task: field})`` of every setting, in declaration order."""
    seen: dict[tuple[str, str | None], dict[str, FieldInfo]] = {}
    for task in TASKS.values():
        cls = task.config_class
        for name, info in cls.model_fields.items():
            if name in NESTED:
                for inner, inner_info in info.annotation.model_fields.items():
                    seen.setdefault((inner, name), {})[task.name] = inner_info
            elif name not in NOT_FLAGS:
                seen.setdefault((name, None), {})[task.name] = info
    for (name, parent), by_task in seen.items():
        yield name, parent, by_task


def _base_field(name: str, parent: str | None) -> FieldInfo | None:
    """The field as the common ``RunConfig``/``TrainConfig`` declares it (its description is
    the task-neutral one), or None for a task's own field."""
    from slimrec.train.config import TrainConfig

    fields = TrainConfig.model_fields if parent else RunConfig.model_fields
    return fields.get(name)


def _kind(annotation: Any) -> str:
    """"bool", "dict", "list" or "scalar" for a field's type (Optional unwrapped)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _kind(members[0]) if len(members) == 1 else "scalar"
    if annotation is bool:
        return "bool"
    if origin is dict or annotation is dict:
        return "dict"
    if origin in (list, tuple):
        return "list"
    return "scalar"


def _default_text(by_task: dict[str, FieldInfo]) -> str:
    defaults = {}
    for task, info in by_task.items():
        value = info.get_default(call_default_factory=True)
        defaults[task] = value.text if hasattr(value, "text") else value
    values = list(defaults.values())
    if len(by_task) < len(TASKS):
        return f"{', '.join(by_task)} only; default {values[0]!r}"
    if all(value == values[0] for value in values):
        return f"default {values[0]!r}"
    return "default " + ", ".join(f"{value!r} ({task})" for task, value in defaults.items())


def add_config_flags(parser: argparse.ArgumentParser, skip: tuple[str, ...] = ()) -> None:
    """One flag per run setting (see the module docstring)."""
    group = parser.add_argument_group("run settings (each overrides --config)")
    for name, parent, by_task in _config_fields():
        if name in skip:
            continue
        info = _base_field(name, parent) or next(iter(by_task.values()))
        kind = _kind(info.annotation)
        flag = PAIR_FLAGS.get(name, "--" + name.replace("_", "-"))
        help_text = f"{info.description or name} ({_default_text(by_task)})".replace("%", "%%")
        dest = f"{parent}.{name}" if parent else name
        choices = typing.get_args(info.annotation) if typing.get_origin(
            info.annotation) is typing.Literal else None
        if kind == "bool":
            group.add_argument(flag, dest=dest, action=argparse.BooleanOptionalAction,
                               default=None, help=help_text)
        elif kind == "dict":
            group.add_argument(flag, dest=dest, action="append", metavar="KEY=VALUE",
                               default=None, help=help_text + "; repeatable")
        else:
            metavar = "A,B,..." if kind == "list" else name.upper()
            group.add_argument(flag, dest=dest, default=None, metavar=metavar, choices=choices,
                               help=help_text)
    _add_model_param_flags(group)


def _add_model_param_flags(group: argparse._ArgumentGroup) -> None:
    from slimrec.models import model_class

    for flag, (task, model, key) in MODEL_PARAM_FLAGS.items():
        info = model_class(model, task).config_class.model_fields[key]
        choices = typing.get_args(info.annotation) or None
        group.add_argument(flag, dest=_model_param_dest(flag), default=None, choices=choices,
                           help=f"{info.description} ({task} {model} only; default "
                           f"{info.default!r}; the same as --model-param {key}=VALUE)")


def _model_param_dest(flag: str) -> str:
    return "model_param." + flag.removeprefix("--")


def _key_values(pairs: list[str], flag: str) -> dict[str, str]:
    values = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"{flag} expects KEY=VALUE; got {pair!r}.")
        values[key] = _scalar(value)
    return values


def _scalar(text: str) -> Any:
    """``"2"`` -> 2, ``"true"`` -> True, ``"[16, 8]"`` -> [16, 8] (YAML scalars and lists, as in
    a config file), so config.yaml records what the setting means; other text stays text."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def config_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The settings the user gave as flags, nested as the config has them."""
    values: dict[str, Any] = {}
    task = getattr(args, "task", None)
    if task is not None and task not in TASKS:
        from slimrec.tasks import get_task

        get_task(task)  # raises with the known tasks
    for name, parent, by_task in _config_fields():
        dest = f"{parent}.{name}" if parent else name
        given = getattr(args, dest, None)
        if given is None:
            continue
        flag = PAIR_FLAGS.get(name, "--" + name.replace("_", "-"))
        if task is not None and task not in by_task:
            raise ConfigError(f"{flag} applies to {' and '.join(by_task)} runs, not {task}.")
        kind = _kind(next(iter(by_task.values())).annotation)
        if kind == "dict":
            given = _key_values(given, flag)
        elif kind == "list":
            given = [part.strip() for part in given.split(",") if part.strip()]
        (values.setdefault(parent, {}) if parent else values)[name] = given
    _model_param_overrides(args, values, task)
    if task is not None:
        values["task"] = task
    return values


def _model_param_overrides(args: argparse.Namespace, values: dict[str, Any],
                           task: str | None) -> None:
    """Fold the model-setting flags (``--attention X``) into ``model_params``; a clash with
    ``--model-param`` of the same key, or a run of another task, fails by name."""
    for flag, (flag_task, _model, key) in MODEL_PARAM_FLAGS.items():
        given = getattr(args, _model_param_dest(flag), None)
        if given is None:
            continue
        if task is not None and task != flag_task:
            raise ConfigError(f"{flag} applies to {flag_task} runs, not {task}.")
        params = values.setdefault("model_params", {})
        if key in params and params[key] != given:
            raise ConfigError(f"{flag} {given} contradicts --model-param {key}={params[key]}.")
        params[key] = given


def run_config(args: argparse.Namespace) -> RunConfig:
    """The run config of a verb's flags: defaults, then ``--config``, then the flags given.

    The task is ``--task``, else the config file's, else retrieval; a flag of a setting that
    task does not have fails by name.
    """
    file_values = read_config_file(args.config) if getattr(args, "config", None) else {}
    if getattr(args, "task", None) is None:
        args.task = str(file_values.get("task", "retrieval"))
    return load_config(getattr(args, "config", None), config_overrides(args))
