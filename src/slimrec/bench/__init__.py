"""Sweeps over models x methods x budgets (``sweep``), their report (``report``) and the
search for the best model under a budget (``fit``)."""
