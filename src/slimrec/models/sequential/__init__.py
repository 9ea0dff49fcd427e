"""Sequential models: next-item prediction from a user's ordered history."""

from slimrec.models.sequential.sasrec import SASRec, SASRecConfig

__all__ = ["SASRec", "SASRecConfig"]
