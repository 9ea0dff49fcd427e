"""``TrainConfig``: the optimisation settings of a run, declared once for every task.

A task changes only defaults, by subclassing (``tasks/ctr.py``: BCE models want a larger lr and
decay it on a plateau of validation AUC). A run config holds it nested, as ``train``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeVar

from pydantic import Field, create_model, model_validator
from pydantic.fields import FieldInfo

from slimrec.config import FrozenConfig


class TrainConfig(FrozenConfig):
    """How one model is trained: optimiser, schedule, early stopping."""

    epochs: int = Field(50, ge=1, description="most epochs to train")
    batch_size: int = Field(4096, ge=1, description="training rows per step")
    lr: float = Field(1e-3, gt=0, description="learning rate (Adam; lazy Adam for row-sparse "
                      "tables)")
    lr_schedule: Literal["milestones", "plateau"] = Field(
        "milestones", description="milestones: lr times lr_gamma after each of lr_milestones; "
        "plateau: lr times lr_gamma after each validation check without improvement")
    lr_milestones: tuple[Annotated[int, Field(ge=1)], ...] = Field(
        (), description="epochs after which lr is multiplied by lr_gamma (lr_schedule "
        "milestones)")
    lr_gamma: float = Field(0.1, gt=0, le=1, description="lr decay factor")
    l2: float = Field(1e-4, ge=0, description="weight of the L2 penalty on batch embeddings")
    patience: int = Field(3, ge=1, description="validation checks without improvement before "
                          "stopping")
    min_delta: float = Field(0.0, ge=0, description="validation gain that counts as an "
                             "improvement")
    eval_every: int = Field(5, ge=1, description="epochs between validation checks")
    val_metric: str | None = Field(None, description="validation metric for early stopping "
                                   "(default: the task's, recall@20 or auc)")
    eval_before: bool = Field(False, description="also score the starting model on validation "
                              "(epoch 0), so fine-tuning never returns a worse model than it "
                              "was given")

    @model_validator(mode="after")
    def _milestones_need_their_schedule(self) -> TrainConfig:
        if self.lr_milestones and self.lr_schedule != "milestones":
            raise ValueError(f"lr_milestones {list(self.lr_milestones)} apply to lr_schedule "
                             f"'milestones', not {self.lr_schedule!r}")
        return self


C = TypeVar("C", bound=FrozenConfig)


def with_defaults(base: type[C], name: str, doc: str, **defaults: Any) -> type[C]:
    """A subclass of ``base`` whose named fields keep their type, constraints and description
    and take new defaults: a task's own defaults, without declaring the fields twice."""
    fields = {key: (base.model_fields[key].annotation,
                    FieldInfo.merge_field_infos(base.model_fields[key], default=value))
              for key, value in defaults.items()}
    return create_model(name, __base__=base, __doc__=doc, **fields)  # type: ignore[call-overload]
