"""Evaluation: full-ranking metrics (retrieval)."""

from slimrec.eval.metrics import METRICS
from slimrec.eval.ranking import RankingResult, evaluate_ranking

__all__ = ["METRICS", "RankingResult", "evaluate_ranking"]
