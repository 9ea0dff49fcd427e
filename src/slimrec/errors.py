"""Exception classes for errors a user can fix. The CLI prints their message, not a traceback."""


import difflib
from collections.abc import Iterable


class SlimRecError(Exception):
    """Base class of every error caused by user input (data, config, budget)."""


class DataError(SlimRecError, ValueError):
    """A data file or array is malformed; the message names the file, line and field."""


class ConfigError(SlimRecError, ValueError):
    """A configuration value is unknown or out of range; the message names the key."""


class BudgetError(SlimRecError, ValueError):
    """A memory budget cannot be met; the message states the smallest reachable size."""


class ArtifactError(SlimRecError):
    """A saved model is corrupt, foreign or from an incompatible version."""


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """`` Did you mean 'x'?`` naming the closest of ``known`` to ``name``, or ``""``."""
    guess = difflib.get_close_matches(str(name), list(known), n=1)
    return f" Did you mean {guess[0]!r}?" if guess else ""
