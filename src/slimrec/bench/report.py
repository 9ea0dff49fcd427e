"""The report of a sweep: a markdown table, a Pareto plot (PNG) and the Pareto-optimal set.

Bytes are the embedding-table bytes (``memory_bytes.embeddings``): what the method and budget
control, counted exactly. The table also shows the bytes of the served artifact
(``memory_bytes.inference``), which differ for LightGCN (its propagated vectors are fp32), and
the task's second metric (retrieval: ndcg@20; CTR: logloss). Metric definitions come from the
task, as recorded in the documents.
A point is Pareto-optimal for its model when no other point of that model has at most its bytes
and a higher metric.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from slimrec.bench.sweep import budget_label
from slimrec.budget import format_bytes
from slimrec.errors import ConfigError
from slimrec.io import atomic_write, atomic_write_json, atomic_write_text

REPORT_FILE, PLOT_FILE, PARETO_FILE = "report.md", "pareto.png", "pareto.json"


@dataclass(frozen=True)
class Point:
    """One (model, method, budget), averaged over its seeds."""

    model: str
    method: str
    budget: str
    embedding_bytes: int
    full_bytes: int
    inference_bytes: int
    value: float
    value_std: float  # sample standard deviation over the seeds (0 for one seed)
    seeds: int
    secondary: float | None  # the task's second metric (``secondary_metric``), mean over seeds
    train_seconds: float
    epochs: float
    best_epoch: float | None = None  # mean over the seeds of the epoch kept (None: unrecorded)
    capped: int = 0  # seeds whose best epoch is the epoch cap: stopped while still improving
    tied_share: float | None = None  # mean share of test users with a score tie at the cutoff
    secondary_std: float | None = None  # the second metric's sample sd over the seeds

    @property
    def ratio(self) -> float:
        return self.embedding_bytes / self.full_bytes

    @property
    def ci95(self) -> float:
        """Half-width of the 95% confidence interval of the mean over the seeds (Student's t,
        ``seeds - 1`` degrees of freedom); 0 for one seed."""
        return confidence_half_width(self.value_std, self.seeds)


def confidence_half_width(std: float, count: int, level: float = 0.95) -> float:
    """``t(level, count - 1) * std / sqrt(count)``: the half-width of the interval of a mean
    of ``count`` values whose sample standard deviation is ``std``."""
    if count < 2:
        return 0.0
    from scipy.stats import t

    return float(t.ppf(0.5 + level / 2, count - 1) * std / count ** 0.5)


def task_of(documents: Sequence[dict[str, Any]]) -> str:
    """The one task of the documents (results written before ``task`` was recorded in every
    document are retrieval); documents of several tasks cannot share a report."""
    tasks = {document.get("task", "retrieval") for document in documents}
    if len(tasks) > 1:
        raise ConfigError(f"the documents mix tasks ({', '.join(sorted(tasks))}); report each "
                          "task apart.")
    return tasks.pop() if tasks else "retrieval"


def secondary_metric(task: str, metric: str) -> str:
    """The second column of the report: the task's first report metric that is not ``metric``."""
    from slimrec.tasks import get_task

    return next(name for name in get_task(task).report_metrics if name != metric)


def summarize(documents: Sequence[dict[str, Any]],
              metric: str) -> tuple[list[Point], list[dict[str, Any]]]:
    """``(points, infeasible cells)`` from the cell documents; points in first-seen order.

    A document repeating an earlier one's (model, method, budget, seed) is ignored, so results
    merged from elsewhere never count twice.
    """
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    infeasible, seen = [], set()
    for document in documents:
        if document.get("status") == "infeasible":
            infeasible.append(document)
            continue
        bench = document.get("bench", {})
        budget = bench.get("budget", document["embedding"]["budget"])
        budget = "none" if budget is None else budget_label(budget)
        # A post-training variant (e.g. "svd-finetune") is labelled apart from its method.
        key = (document["model"], bench.get("method", document["embedding"]["method"]), budget)
        if (*key, document.get("seed")) in seen:
            continue
        seen.add((*key, document.get("seed")))
        groups.setdefault(key, []).append(document)
    points = []
    second = secondary_metric(task_of(documents), metric)
    for (model, method, budget), group in groups.items():
        values = [_metric(document, metric) for document in group]
        others = [document["metrics"]["test"].get(second) for document in group]
        memory = group[0]["memory_bytes"]
        points.append(Point(
            model, method, budget, int(memory["embeddings"]), int(memory["full_fp32_embeddings"]),
            int(memory.get("inference", memory["model_total"])),
            statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0,
            len(group),
            statistics.fmean(others) if None not in others else None,
            statistics.fmean(document["timing"]["train_seconds"] for document in group),
            statistics.fmean(document["timing"]["epochs"] for document in group),
            _mean_or_none([document["timing"].get("best_epoch") for document in group]),
            sum(_stopped_by_cap(document) for document in group),
            _mean_or_none([_tied_share(document, metric) for document in group]),
            statistics.stdev(others) if len(others) > 1 and None not in others else None))
    return points, infeasible


def _mean_or_none(values: Sequence[float | None]) -> float | None:
    return None if not values or None in values else statistics.fmean(values)


def _stopped_by_cap(document: dict[str, Any]) -> bool:
    """Whether the kept epoch is the last one the cap allowed (``timing.epoch_cap``, recorded
    since issue 12): validation was still improving when training stopped."""
    timing = document["timing"]
    cap = timing.get("epoch_cap")
    return cap is not None and cap > 0 and timing.get("best_epoch") == cap


def _tied_share(document: dict[str, Any], metric: str) -> float | None:
    """Share of the evaluated test users whose K-th and (K+1)-th scores tie (K of ``metric``)."""
    details = document.get("evaluation", {}).get("test", {})
    tied, users = details.get("users_tied_at_cutoff"), details.get("users")
    if not tied or not users or "@" not in metric:
        return None
    count = tied.get(metric.split("@")[1])
    return None if count is None else count / users


def _metric(document: dict[str, Any], metric: str) -> float:
    test = document["metrics"]["test"]
    if metric not in test:
        raise ConfigError(f"metric {metric!r} is not in the results of cell "
                          f"{document.get('bench', {}).get('cell')}; it has "
                          f"{', '.join(test)}.")
    return float(test[metric])


def pareto_front(points: Sequence[Point]) -> list[Point]:
    """Points not dominated within their model (fewer-or-equal bytes and a higher metric)."""
    front = []
    for model in dict.fromkeys(point.model for point in points):
        best = float("-inf")
        ordered = sorted((p for p in points if p.model == model),
                         key=lambda p: (p.embedding_bytes, -p.value))
        for point in ordered:
            if point.value > best:
                front.append(point)
                best = point.value
    return front


def epochs_text(point: Point) -> str:
    """Epochs run, the kept epoch in brackets, and ↑ when some seed was stopped by the cap."""
    best = "" if point.best_epoch is None else f" ({point.best_epoch:.0f})"
    return f"{point.epochs:.0f}{best}{' ↑' * bool(point.capped)}"


def _reference_values(points: Sequence[Point], reference_method: str) -> dict[str, float]:
    """Per model, the reference method's best metric (the denominator of "of ref.")."""
    values: dict[str, float] = {}
    for p in points:
        if p.method == reference_method:
            values[p.model] = max(values.get(p.model, float("-inf")), p.value)
    return values


def markdown(points: Sequence[Point], front: Sequence[Point],
             infeasible: Sequence[dict[str, Any]], metric: str, title: str,
             definitions: dict[str, str], second: str, reference_method: str = "full") -> str:
    """The report: the results table, the Pareto-optimal set, the cells that did not fit."""
    optimal = {(p.model, p.method, p.budget) for p in front}
    reference = _reference_values(points, reference_method)
    lines = [f"# {title}", "",
             *(f"- {name}: {definitions[name.split('@')[0]]}" for name in (metric, second, "ties")
               if name.split("@")[0] in definitions), "",
             "Test split, mean over seeds ± the half-width of its 95% confidence interval "
             "(Student's t; one seed: the value alone); sd: the seeds' sample standard "
             "deviation. Bytes: embedding tables as trained "
             "(`memory_bytes.embeddings`); serving bytes: the saved model "
             "(`memory_bytes.inference`). of ref.: the metric as a share of the "
             f"`{reference_method}` cell of the same model. Epochs: run (kept, mean over seeds); "
             "↑ = in some seed the kept epoch is the epoch cap, so validation was still "
             "improving when the cap stopped it. Tied users: share of test users whose K-th and "
             "(K+1)-th scores are equal (ties broken neutrally). * = Pareto-optimal.", "",
             f"| model | method | budget | embedding bytes | of full | serving bytes | {metric} "
             f"| sd | of ref. | {second} | seeds | epochs (kept) | tied users | train s | |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for p in sorted(points, key=lambda p: (p.model, p.method, -p.embedding_bytes)):
        spread, sd = (f" ± {p.ci95:.4f}", f"{p.value_std:.4f}") if p.seeds > 1 else ("", "-")
        other = f"{p.secondary:.4f}" if p.secondary is not None else "-"
        of_reference = (f"{p.value / reference[p.model]:.0%}" if reference.get(p.model)
                        else "-")
        tied = f"{p.tied_share:.1%}" if p.tied_share is not None else "-"
        mark = "*" if (p.model, p.method, p.budget) in optimal else ""
        lines.append(f"| {p.model} | {p.method} | {p.budget} | {format_bytes(p.embedding_bytes)} "
                     f"| {p.ratio:.1%} | {format_bytes(p.inference_bytes)} "
                     f"| {p.value:.4f}{spread} | {sd} | {of_reference} | {other} | {p.seeds} "
                     f"| {epochs_text(p)} | {tied} | {p.train_seconds:.0f} | {mark} |")
    lines += ["", "## Pareto-optimal set", ""]
    for p in front:
        lines.append(f"- {p.model}: {p.method} @ {p.budget} — {format_bytes(p.embedding_bytes)}, "
                     f"{metric} {p.value:.4f}")
    if infeasible:
        lines += ["", "## Cells that cannot meet their budget", ""]
        lines += [f"- {d['bench']['cell']}: {d['error']}" for d in infeasible]
    return "\n".join(lines) + "\n"


def plot(points: Sequence[Point], front: Sequence[Point], path: Path, metric: str,
         reference_method: str, title: str) -> Path:
    """Metric against embedding bytes (log x), one panel per model, one line per method; the
    reference method is starred with a dotted line at its best value."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = list(dict.fromkeys(p.model for p in points))
    figure, axes = plt.subplots(1, len(models), figsize=(6.5 * len(models), 4.8), squeeze=False)
    methods = list(dict.fromkeys(p.method for p in points))
    colors = {method: plt.get_cmap("tab20")(i % 20) for i, method in enumerate(methods)}
    for axis, model in zip(axes[0], models, strict=True):
        for method in methods:
            line = sorted((p for p in points if p.model == model and p.method == method),
                          key=lambda p: p.embedding_bytes)
            if not line:
                continue
            reference = method == reference_method
            axis.plot([p.embedding_bytes for p in line], [p.value for p in line],
                      marker="*" if reference else "o", markersize=14 if reference else 5,
                      color="black" if reference else colors[method],
                      label=f"{method} (reference)" if reference else method)
            if reference:
                axis.axhline(max(p.value for p in line), color="black", linestyle=":",
                             linewidth=1)
        optimal = sorted((p for p in front if p.model == model), key=lambda p: p.embedding_bytes)
        axis.step([p.embedding_bytes for p in optimal], [p.value for p in optimal], where="post",
                  color="grey", linewidth=3, alpha=0.3, label="Pareto front")
        axis.set_xscale("log")
        axis.set_xlabel("embedding bytes (log scale)")
        axis.set_ylabel(f"test {metric}")
        axis.set_title(f"{title} · {model}")
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize=8)
    figure.tight_layout()
    atomic_write(path, lambda tmp: figure.savefig(tmp, dpi=120, format="png"))
    plt.close(figure)
    return path


def write_report(out: str | Path, documents: Sequence[dict[str, Any]], metric: str = "recall@20",
                 reference_method: str = "full", title: str = "SlimRec sweep") -> dict[str, Path]:
    """Write ``report.md``, ``pareto.png`` and ``pareto.json`` into ``out``."""
    out = Path(out)
    points, infeasible = summarize(documents, metric)
    if not points:
        raise ConfigError(f"{out}: no finished cells to report on yet.")
    front = pareto_front(points)
    task = task_of(documents)
    from slimrec.tasks import get_task

    paths = {"report": out / REPORT_FILE, "plot": out / PLOT_FILE, "pareto": out / PARETO_FILE}
    atomic_write_text(paths["report"], markdown(points, front, infeasible, metric, title,
                                                get_task(task).definitions,
                                                secondary_metric(task, metric),
                                                reference_method))
    plot(points, front, paths["plot"], metric, reference_method, title)
    atomic_write_json(paths["pareto"], {"metric": metric,
                                        "pareto_optimal": [{**asdict(p), "ci95": p.ci95}
                                                           for p in front]})
    return paths


def load_documents(folder: str | Path) -> list[dict[str, Any]]:
    """Every cell document under ``folder/cells``, sorted by file name."""
    return [json.loads(path.read_text())
            for path in sorted(Path(folder, "cells").glob("*.json"))]


def load_results(patterns: Sequence[str]) -> list[dict[str, Any]]:
    """Results documents (``slimrec train`` shape) matching glob ``patterns``, to merge runs
    made outside the sweep into its report; files of another shape fail clearly."""
    import glob

    documents = []
    for pattern in patterns:
        paths = sorted(glob.glob(pattern))
        if not paths:
            raise ConfigError(f"--extra {pattern!r} matches no file.")
        for path in paths:
            document = json.loads(Path(path).read_text())
            if not isinstance(document, dict) or "metrics" not in document:
                raise ConfigError(f"{path}: not a results document (no 'metrics').")
            documents.append(document)
    return documents
