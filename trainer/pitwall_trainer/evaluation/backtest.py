"""Backtest a season: each race predicted by a model retrained on every race before it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from pitwall_trainer.evaluation.card import write_card
from pitwall_trainer.evaluation.runner import Evaluation, FoldOutcome, evaluate_folds
from pitwall_trainer.evaluation.splits import backtest_folds
from pitwall_trainer.features import FEATURE_VERSION, load_feature_matrix
from pitwall_trainer.models.factory import get_spec, resolve_params
from pitwall_trainer.progress import Progress


def backtest(
    model: str,
    algorithm: str,
    season: int,
    data_dir: str | Path | None = None,
    params: dict[str, Any] | None = None,
    *,
    first_year: int | None = None,
    card_dir: str | Path | None = None,
    validate: bool = True,
    show_progress: bool | None = None,
) -> tuple[Evaluation, dict[str, Any]]:
    """Run the season's per-race folds; return the evaluation and a JSON-ready summary."""
    spec = get_spec(model)
    resolve_params(model, algorithm, params)  # bad params fail before any work
    started = time.monotonic()
    matrix = load_feature_matrix(data_dir, validate=validate)
    first = spec.first_year if first_year is None else first_year
    folds = backtest_folds(matrix.frame, season, first)
    with Progress(total=len(folds), description=f"backtest {model} {season}", show=show_progress) as progress:
        hits: list[float] = []

        def tick(outcome: FoldOutcome) -> None:
            hits.append(outcome.metrics.get(spec.primary_metric, float("nan")))
            progress.advance(message=outcome.fold.name, metric=sum(hits) / len(hits))

        ev = evaluate_folds(model, algorithm, params, matrix.frame, folds, on_fold=tick)
    summary: dict[str, Any] = {
        "model": model, "algorithm": algorithm, "season": season, "races": len(folds),
        "first_year": first, "data_hash": matrix.data_hash, "feature_version": FEATURE_VERSION,
        "feature_cache_hit": matrix.cache_hit, "metrics": ev.metrics, "baselines": ev.baselines,
        "primary_metric": spec.primary_metric, "primary_mode": spec.primary_mode,
        "seconds": round(time.monotonic() - started, 2),
    }
    if card_dir is not None:
        context = {"model": model, "algorithm": algorithm, "evaluation": f"backtest {season}, retrained per race",
                   "data_hash": matrix.data_hash, "feature_version": FEATURE_VERSION,
                   "params": resolve_params(model, algorithm, params)}
        summary["card_dir"] = str(write_card(Path(card_dir), context, ev, ev.folds[-1].fitted))
    return ev, summary
