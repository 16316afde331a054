"""`train`: features -> walk-forward evaluation against baselines -> final model -> TrainResult.

Evaluation is honest in time: the evaluation races are the last chosen season, cut into
consecutive folds, each predicted by a model trained on every race before it (expanding
window). The final model then learns from all chosen seasons plus earlier history back to
`first_year` (more races teach more about converting a grid slot into a result).
"""

from __future__ import annotations

import logging
import pickle
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pandas as pd
from pitwall_api.trainingrun import DEFAULT_WALK_FORWARD_FOLDS

from pitwall_trainer import serving
from pitwall_trainer.errors import ConfigError
from pitwall_trainer.evaluation import splits
from pitwall_trainer.evaluation.card import write_card
from pitwall_trainer.evaluation.runner import Evaluation, FoldOutcome, evaluate_folds
from pitwall_trainer.features import FEATURE_VERSION, load_feature_matrix
from pitwall_trainer.models.factory import fit_model, get_spec, resolve_params
from pitwall_trainer.progress import Progress
from pitwall_trainer.progress import phase as progress_phase
from pitwall_trainer.result import TrainResult

log = logging.getLogger(__name__)


def _check_seasons(frame: pd.DataFrame, seasons: Sequence[int]) -> list[int]:
    if not seasons:
        raise ConfigError("--seasons: no season given")
    have = {int(y) for y in frame["year"].unique()}
    wanted = {int(s) for s in seasons}
    missing = sorted(wanted - have)
    gaps = [s for s in missing if s < max(have)]
    if gaps:
        raise ConfigError(f"--seasons: no races for {gaps[0]} in the data ({min(have)}-{max(have)})")
    chosen = sorted(wanted & have)
    if not chosen:
        raise ConfigError(f"--seasons: no races for {missing[0]} in the data yet ({min(have)}-{max(have)})")
    if missing:  # a retraining template names the season under way before its first race is in
        log.warning("seasons %s have no races in the data yet; training on %s", missing, chosen)
    return chosen


def evaluation_races(
    frame: pd.DataFrame, seasons: Sequence[int], holdout_races: int | None = None, holdout_season: int | None = None
) -> pd.DataFrame:
    """The races evaluated: the last N races, a whole season, or (default) the last chosen season."""
    calendar = splits.race_calendar(frame[frame["year"] <= max(seasons)])
    if holdout_races is not None and holdout_season is not None:
        raise ConfigError("evaluation: give holdout_races or holdout_season, not both")
    if holdout_races is not None:
        if not 1 <= holdout_races < len(calendar):
            raise ConfigError(f"evaluation.holdoutRaces: {holdout_races} is not between 1 and {len(calendar) - 1}")
        return calendar.tail(holdout_races)
    season = max(seasons) if holdout_season is None else holdout_season
    if season > max(seasons):
        raise ConfigError(f"evaluation.holdoutSeason: {season} is after the last chosen season {max(seasons)}")
    return splits.season_races(calendar, season)


def evaluate(
    model: str,
    algorithm: str,
    frame: pd.DataFrame,
    races: pd.DataFrame,
    params: dict[str, Any] | None = None,
    folds: int = 4,
    first_year: int | None = None,
    on_fold: Callable[[FoldOutcome], None] | None = None,
) -> Evaluation:
    """Walk-forward CV over `races` in `folds` blocks (expanding window), or one holdout when folds=0."""
    if folds < 0:
        raise ConfigError(f"--folds: must be 0 (single holdout) or more, got {folds}")
    first = get_spec(model).first_year if first_year is None else first_year
    chosen = (splits.walk_forward_folds(frame, races, folds, first) if folds
              else [splits.temporal_holdout(frame, races, first)])
    return evaluate_folds(model, algorithm, params, frame, chosen, on_fold=on_fold)


def train(
    model: str,
    algorithm: str,
    seasons: Sequence[int],
    data_dir: str | Path | None = None,
    params: dict[str, Any] | None = None,
    *,
    holdout_races: int | None = None,
    holdout_season: int | None = None,
    walk_forward_folds: int = DEFAULT_WALK_FORWARD_FOLDS,
    first_year: int | None = None,
    output: str | Path | None = None,
    card_dir: str | Path | None = None,
    validate: bool = True,
    progress: Progress | None = None,
    show_progress: bool | None = None,
) -> TrainResult:
    """Train `model` with `algorithm` on `seasons` (+ history), evaluate, optionally save and card.

    Evaluation races default to the last chosen season; `walk_forward_folds=0` is one temporal
    holdout. `progress` (an outer bar, any total) is advanced proportionally; without it a bar
    of our own is shown on a terminal.
    """
    spec = get_spec(model)
    resolved = resolve_params(model, algorithm, params)  # fail fast on bad params
    started = time.monotonic()
    matrix = load_feature_matrix(data_dir, validate=validate)
    frame = matrix.frame
    seasons = _check_seasons(frame, seasons)
    first = min(spec.first_year if first_year is None else first_year, seasons[0])
    scope = frame[frame["year"] <= seasons[-1]]
    races = evaluation_races(scope, seasons, holdout_races, holdout_season)
    n_steps = max(1, walk_forward_folds) + 1
    with ExitStack() as stack:
        bar = progress or stack.enter_context(Progress(total=n_steps, description=f"train {model}", show=show_progress))
        step = max(1, bar.total // n_steps)

        def tick(outcome: FoldOutcome) -> None:
            bar.advance(step, message=outcome.fold.name, metric=outcome.metrics.get(spec.primary_metric))

        ev = evaluate(model, algorithm, scope, races, params, walk_forward_folds, first, tick)
        final_rows = scope[scope["year"] >= first]
        progress_phase("Training", message=f"fitting the final {algorithm} model")
        fitted = fit_model(model, algorithm, final_rows, params)
        bar.advance(bar.total, message="final model")
    log.info("trained %s/%s on %d races (%d rows) in %.1fs", model, algorithm, fitted.train_races,
             fitted.train_rows, time.monotonic() - started)

    features = fitted.feature_names
    evaluated = f"{'walk-forward ' + str(walk_forward_folds) + ' folds' if walk_forward_folds else 'holdout'}"
    run_params = {**resolved, "first_year": first, "evaluation": evaluated,
                  "eval_races": len(races), "eval_from": str(pd.Timestamp(races["date"].min()).date()),
                  "feature_version": FEATURE_VERSION, "train_races": fitted.train_races,
                  "train_rows": fitted.train_rows}
    result = TrainResult(
        model=model,
        algorithm=algorithm,
        estimator=fitted.estimator,
        feature_names=features,
        params=run_params,
        metrics=dict(ev.metrics),
        baselines=ev.flat_baselines(),
        primary_metric=spec.primary_metric,
        primary_mode=spec.primary_mode,
        data_hash=matrix.data_hash,
        seasons=list(seasons),
        train_end_date=fitted.train_end_date,
        input_example=serving.input_example(fitted, final_rows),
        serving=serving.PitwallModel(fitted),
    )
    if card_dir is None:  # every run gets a card: beside the model file, else in a fresh temp folder
        card_dir = (Path(output).with_name(Path(output).stem + "_card") if output is not None
                    else Path(tempfile.mkdtemp(prefix=f"pitwall-card-{model}-")))
    context = {"model": model, "algorithm": algorithm, "seasons": seasons, "data_hash": matrix.data_hash,
               "feature_version": FEATURE_VERSION,
               "evaluation": f"{evaluated} over {len(races)} races from {run_params['eval_from']}",
               "params": resolved}
    result.card_dir = write_card(Path(card_dir), context, ev, fitted)
    if output is not None:
        save_model(Path(output), fitted, result)
    return result


def save_model(path: Path, fitted: Any, result: TrainResult) -> Path:
    """Pickle the fitted model with what a reader needs to trust and apply it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    bundle = {"fitted": fitted, "feature_version": FEATURE_VERSION, "data_hash": result.data_hash,
              "seasons": result.seasons, "metrics": result.metrics, "baselines": result.baselines}
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("wb") as handle:
        pickle.dump(bundle, handle)
    tmp.replace(path)
    return path


def load_model(path: str | Path) -> dict[str, Any]:
    with Path(path).open("rb") as handle:
        return pickle.load(handle)
