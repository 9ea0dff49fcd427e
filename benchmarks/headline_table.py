"""The headline table of a sweep, as BENCHMARKS.md prints it: one row per method and budget, in
the sweep's own order, with the test metric's mean ± sample sd over the seeds (bold when the
cell has 3 seeds or more), its share of the reference (full) table, the second metric, epochs
run (kept; ↑ when the cap stopped a seed), the share of test users tied across the cutoff,
and the seed count.

    python benchmarks/headline_table.py --config benchmarks/ml1m_pareto_lightgcn.yaml
    python benchmarks/headline_table.py --config benchmarks/gowalla_neumf.yaml --model neumf

It reads the finished cells under the sweep's ``out`` folder and prints Markdown; nothing is
written. The same figures (with the 95% interval instead of the sd) are in the sweep's
``report.md`` (``slimrec bench --config ... --report-only``).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from slimrec.bench.report import Point, epochs_text, secondary_metric, summarize, task_of
from slimrec.bench.sweep import BenchConfig, budget_label, finished_documents
from slimrec.config import layered_config

HEADER = ("| method | budget | bytes (of full) | test {metric} | of full | {second} "
          "| epochs run (kept) | users tied at K={k} | seeds |\n"
          "|---|---|---:|---:|---:|---:|---|---:|---:|")


def _title(metric: str) -> str:
    """``recall@20`` -> ``Recall@20``, as the tables print metric names."""
    name, at, k = metric.partition("@")
    return {"recall": "Recall", "ndcg": "NDCG", "auc": "AUC", "logloss": "LogLoss"}.get(
        name, name) + at + k


def _mean_sd(mean: float | None, sd: float | None, seeds: int) -> str:
    if mean is None:
        return "–"
    return f"{mean:.4f}" if seeds < 2 or sd is None else f"{mean:.4f} ± {sd:.4f}"


def row(point: Point, reference: Point | None) -> str:
    """One Markdown row of ``point``; its share is of ``reference``'s mean."""
    value = _mean_sd(point.value, point.value_std, point.seeds)
    if point.seeds >= 3:
        value = f"**{value}**"
    share = "–" if reference is None else f"{point.value / reference.value:.0%}"
    budget = "–" if point.method == "full" else point.budget.replace("pct", "%")
    tied = "–" if point.tied_share is None else f"{point.tied_share:.1%}"
    return (f"| {'full' if point.method == 'full' else f'`{point.method}`'} | {budget} "
            f"| {point.embedding_bytes:,} ({point.ratio:.1%}) | {value} | {share} "
            f"| {_mean_sd(point.secondary, point.secondary_std, point.seeds)} "
            f"| {epochs_text(point)} | {tied} | {point.seeds} |")


def table(bench: BenchConfig, model: str) -> str:
    documents = finished_documents(bench)
    metric = bench.report_metric()
    points, _ = summarize(documents, metric)
    points = [point for point in points if point.model == model]
    order = {method: rank for rank, method in enumerate(bench.methods)}
    budgets = {budget_label(budget): rank for rank, budget in enumerate(bench.budgets)}
    points.sort(key=lambda p: (order.get(p.method, len(order)), budgets.get(p.budget, -1)))
    reference = next((p for p in points if p.method == bench.reference_method), None)
    header = HEADER.format(metric=_title(metric), k=metric.split("@")[-1],
                           second=_title(secondary_metric(task_of(documents), metric)))
    return "\n".join([header, *(row(point, reference) for point in points)])


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True, help="the sweep's YAML")
    parser.add_argument("--model", help="the model whose rows to print (default: the sweep's "
                        "first)")
    args = parser.parse_args(argv)
    bench = layered_config(BenchConfig, args.config, {})
    print(table(bench, args.model or bench.models[0]))


if __name__ == "__main__":
    main()
