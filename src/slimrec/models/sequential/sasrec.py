"""SASRec (Kang & McAuley, ICDM 2018): a causal transformer over a user's last items.

The one item table (any compression method; row 0 is padding) embeds the input items and, tied,
scores the next item: ``score(history, i) = <h_last, item_table(i)>``. Positions are learned
embeddings counted back from the last item (what SASRec's left padding gives), or RoPE inside
attention. Blocks are pre-LayerNorm with a final LayerNorm. ``attention`` picks dense causal
attention or BlossomRec's sparse attention (``attention.py``).

Inputs are right-padded ``LongTensor[B, L]`` (0 = padding) with ``lengths: LongTensor[B]``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

import torch
from pydantic import Field, model_validator
from torch import Tensor, nn

from slimrec.config import FrozenConfig
from slimrec.embeddings.base import EmbeddingTable
from slimrec.errors import ConfigError, DataError
from slimrec.models.base import RecModel, register_model
from slimrec.models.sequential.attention import BlossomAttention, DenseAttention


class SASRecConfig(FrozenConfig):
    """Architecture of SASRec (``model_params``)."""

    num_layers: int = Field(2, ge=1, description="transformer blocks")
    num_heads: int = Field(1, ge=1, description="query heads (dim must divide by it)")
    kv_heads: int | None = Field(None, ge=1, description="key/value heads shared by groups of "
                                 "query heads (default: num_heads)")
    dropout: float = Field(0.2, ge=0, lt=1, description="dropout on embeddings and sublayers")
    positions: Literal["learned", "rope"] = Field("learned", description="learned position "
                                                  "embeddings or RoPE on queries and keys")
    attention: Literal["dense", "blossom"] = Field("dense", description="dense causal "
                                                   "attention or BlossomRec sparse attention")
    path: Literal["auto", "gather", "reference"] = Field(
        "auto", description="blossom: gathered keys, the dense-mask reference, or auto "
        "(reference below 256 items, gather from there)")
    window: int = Field(32, ge=1, description="blossom: keys compressed into one block key")
    block: int = Field(16, ge=1, description="blossom: tokens per selected block")
    top_k: int = Field(4, ge=1, description="blossom: blocks kept per query")
    local: int = Field(8, ge=1, description="blossom: short-term keys less than this far back")
    compress_hidden: int = Field(64, ge=1, description="blossom: hidden width of the window "
                                 "compressor MLP")

    @model_validator(mode="after")
    def _check_heads(self) -> SASRecConfig:
        if self.kv_heads is not None and self.num_heads % self.kv_heads:
            raise ValueError(f"num_heads {self.num_heads} must be a multiple of kv_heads "
                             f"{self.kv_heads}")
        if self.window < self.block:
            raise ValueError(f"window {self.window} must be at least block {self.block}")
        return self


class Objective(FrozenConfig):
    """The training loss of a sequential model, kept with it so that fine-tuning a saved model
    (``slimrec compress --finetune-epochs``) trains it the same way."""

    loss: Literal["bce", "sampled_softmax", "full_ce", "gbce"] = "full_ce"
    num_negatives: int = Field(256, ge=1)
    gbce_t: float = Field(0.75, ge=0, le=1)


class FeedForward(nn.Sequential):
    def __init__(self, dim: int, dropout: float) -> None:
        super().__init__(nn.Linear(dim, dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(dim, dim))


class Block(nn.Module):
    """Pre-LayerNorm transformer block: ``x + attn(LN(x))``, then ``x + ffn(LN(x))``."""

    def __init__(self, dim: int, config: SASRecConfig) -> None:
        super().__init__()
        heads, kv_heads = config.num_heads, config.kv_heads or config.num_heads
        rope = config.positions == "rope"
        if config.attention == "blossom":
            self.attention: nn.Module = BlossomAttention(
                dim, heads, kv_heads, rope, window=config.window, block=config.block,
                top_k=config.top_k, local=config.local, compress_hidden=config.compress_hidden,
                path=config.path)
        else:
            self.attention = DenseAttention(dim, heads, kv_heads, rope)
        self.attention_norm, self.feed_norm = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.feed = FeedForward(dim, config.dropout)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        x = x + self.dropout(self.attention(self.attention_norm(x), lengths))
        return x + self.dropout(self.feed(self.feed_norm(x)))


@register_model
class SASRec(RecModel):
    """Next-item prediction over the last ``max_len`` items with a tied item table."""

    name: ClassVar[str] = "sasrec"
    task: ClassVar[str] = "sequential"
    config_class: ClassVar[type[FrozenConfig]] = SASRecConfig

    def __init__(self, item_table: EmbeddingTable, config: SASRecConfig, max_len: int,
                 objective: Objective | None = None) -> None:
        super().__init__()
        dim = item_table.embedding_dim
        if dim % config.num_heads:
            raise ConfigError(f"dim {dim} must be a multiple of model_params.num_heads "
                              f"{config.num_heads}.")
        if config.positions == "rope" and (dim // config.num_heads) % 2:
            raise ConfigError(f"positions 'rope' needs an even head dimension; dim {dim} / "
                              f"num_heads {config.num_heads} is odd.")
        if max_len < 1:
            raise ConfigError(f"max_len must be an int >= 1; got {max_len}.")
        self.config, self.max_len = config, int(max_len)
        self.objective = objective or Objective()
        self.item_table = item_table
        self.positions = (nn.Embedding(max_len, dim) if config.positions == "learned"
                          else None)
        self.embedding_dropout = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(dim, config) for _ in range(config.num_layers))
        self.final_norm = nn.LayerNorm(dim)

    @property
    def num_items(self) -> int:
        """Item ids, without the padding row."""
        return self.item_table.num_embeddings - 1

    def artifact_info(self) -> dict[str, Any]:
        return {"max_len": self.max_len, "objective": self.objective.model_dump()}

    @classmethod
    def from_artifact(cls, tables: dict[str, EmbeddingTable], dense: dict[str, Tensor],
                      config: FrozenConfig, info: Mapping[str, Any]) -> SASRec:
        model = cls(tables["item_table"], config, info["max_len"],
                    Objective(**info["objective"]))
        model.load_parts(tables, dense)
        return model

    def encode(self, inputs: Tensor, lengths: Tensor) -> Tensor:
        """Hidden states ``[B, L, dim]`` of right-padded ``inputs: LongTensor[B, L]``
        (``L <= max_len``) whose rows hold ``lengths`` items."""
        if inputs.shape[1] > self.max_len:
            raise DataError(f"sequences of {inputs.shape[1]} items exceed max_len "
                            f"{self.max_len}; keep the last max_len items.")
        valid = (inputs != 0)[..., None]
        x = self.item_table(inputs) * math.sqrt(self.item_table.embedding_dim) * valid
        if self.positions is not None:
            back = lengths[:, None] - 1 - torch.arange(inputs.shape[1], device=inputs.device)
            x = x + self.positions(back.clamp(min=0)) * valid
        x = self.embedding_dropout(x)
        for block in self.blocks:
            x = block(x, lengths) * valid
        return self.final_norm(x)

    def last_hidden(self, inputs: Tensor, lengths: Tensor) -> Tensor:
        """The state after each row's last item: ``[B, dim]`` (what scores the next item)."""
        hidden = self.encode(inputs, lengths)
        return hidden[torch.arange(len(lengths)), lengths - 1]

    def item_weight(self) -> Tensor:
        """Every item row ``[num_items + 1, dim]`` (row 0 is padding), for full scoring."""
        return self.item_table.full_weight()

    def score_all(self, inputs: Tensor, lengths: Tensor) -> Tensor:
        """Scores of every id for the next item: ``[B, num_items + 1]``; padding is -inf."""
        scores = self.last_hidden(inputs, lengths) @ self.item_weight().T
        scores[:, 0] = -torch.inf
        return scores

    def score_items(self, inputs: Tensor, lengths: Tensor, items: Tensor) -> Tensor:
        """Scores of the next-item candidates ``items: LongTensor[B, C]`` -> ``[B, C]``."""
        hidden = self.last_hidden(inputs, lengths)
        return torch.einsum("bd,bcd->bc", hidden, self.item_table(items))
