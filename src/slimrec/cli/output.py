"""What the verbs print, and small argument helpers they share."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from slimrec.budget import format_bytes
from slimrec.errors import ConfigError


def command_line() -> str:
    return "slimrec " + " ".join(sys.argv[1:])


def print_run(document: dict[str, Any], out: Path) -> None:
    memory, embedding = document["memory_bytes"], document["embedding"]
    budget = "none" if embedding["budget"] is None else (
        f"{embedding['budget']} ({embedding['budget_bytes']:,} B of "
        f"{memory['full_fp32_embeddings']:,} B full fp32)")
    print(f"{document['task']}: dataset {document['dataset']['name']}  model "
          f"{document['model']}  embedding {embedding['method']}  budget {budget}")
    test = document["metrics"]["test"]
    print("test  " + "  ".join(f"{key}={value:.4f}" for key, value in test.items()))
    print(f"embedding bytes {memory['embeddings']:,} ({format_bytes(memory['embeddings'])}), "
          f"{memory['full_fp32_embeddings'] / max(1, memory['embeddings']):.1f}x smaller than "
          f"the full fp32 tables; whole model {format_bytes(memory['model_total'])}")
    timing = document["timing"]
    print(f"{timing['epochs']} epochs (best {timing['best_epoch']}), median epoch "
          f"{timing['epoch_seconds_median']:.2f}s, test evaluation {timing['eval_seconds']:.2f}s")
    print(f"wrote {out}/results.json, {out}/model.safetensors")


def split_list(text: str | None, flag: str, kind: type = str) -> list | None:
    """``"a,b"`` -> ``["a", "b"]`` (None stays None); empty or ill-typed lists fail by flag."""
    if text is None:
        return None
    try:
        values = [kind(part.strip()) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ConfigError(f"{flag} expects a comma-separated list of {kind.__name__}s; got "
                          f"{text!r}.") from None
    if not values:
        raise ConfigError(f"{flag} is empty; give at least one value.")
    return values
