"""Model card: card.md plus PNG plots (calibration, feature importance, per-race hits).

What a reviewer needs to trust the model: the data and training window, how it was evaluated
(time-series folds), its metrics beside the baselines on the same races, and per-race results.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: cards are written in pods and CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from pitwall_trainer.evaluation.metrics import HEADLINE, model_metrics, worse  # noqa: E402
from pitwall_trainer.evaluation.runner import Evaluation, score_baselines  # noqa: E402
from pitwall_trainer.models.factory import FittedModel, feature_importance  # noqa: E402

PLOTS = ("calibration.png", "feature_importance.png", "per_race.png")
PER_SEASON = "per_season.csv"


def per_season(ev: Evaluation) -> pd.DataFrame:
    """One row per evaluated season: the model's headline metrics beside each baseline's, and a verdict.

    The verdict names every (baseline, metric) the model is worse on; "beats every baseline" when none.
    """
    rows = []
    for year, pred in ev.predictions.groupby("year", sort=True):
        model = model_metrics(ev.model, pred)
        row: dict[str, Any] = {"season": int(year), "races": int(pred["raceId"].nunique())}
        row.update({f"model.{k}": model[k] for k in HEADLINE[ev.model]})
        losses = []
        for name, metrics in score_baselines(ev.model, pred, list(ev.baselines)).items():
            for k in HEADLINE[ev.model]:
                if k not in metrics:
                    continue
                row[f"{name}.{k}"] = metrics[k]
                if worse(k, model[k], metrics[k]):
                    losses.append(f"{name} {k}")
        row["verdict"] = "worse than " + ", ".join(losses) if losses else "beats every baseline"
        rows.append(row)
    return pd.DataFrame(rows)


def _per_race(ev: Evaluation) -> pd.DataFrame:
    """One row per evaluated race: the model's and the first baseline's per-race figures."""
    rows = []
    baseline = next(iter(ev.baselines), None)
    for race_id, race in ev.predictions.groupby("raceId", sort=False):
        first = race.iloc[0]
        row: dict[str, Any] = {"raceId": race_id, "race": f"{first['year']} R{first['round']} {first['race_name']}"}
        if ev.model == "race_winner":
            pick = race.loc[race["score"].idxmax()]
            row.update(predicted=pick["driverRef"], prob=round(float(pick["prob"]), 3),
                       winner=race.loc[race["won"] == 1, "driverRef"].iloc[0] if race["won"].any() else "?",
                       hit=int(pick["won"] == 1))
            if baseline:
                row["baseline_hit"] = int(race.loc[race[f"baseline.{baseline}"].idxmax(), "won"] == 1)
        else:
            key = "spearman" if ev.model == "quali_order" else "mae_laps"
            row[key] = round(model_metrics(ev.model, race)[key], 3)
            if baseline:
                row[f"baseline_{key}"] = round(model_metrics(ev.model, race.assign(score=race[f"baseline.{baseline}"]))[key], 3)
        rows.append(row)
    return pd.DataFrame(rows)


def _plot_calibration(ev: Evaluation, path: Path) -> None:
    pred = ev.predictions
    fig, ax = plt.subplots(figsize=(5, 4))
    if ev.model == "race_winner":
        bins = np.array([0, 0.02, 0.05, 0.1, 0.2, 0.35, 0.5, 0.7, 1.0])
        ax.plot([0, 1], [0, 1], "--", color="grey", label="perfect")
        for column, label in (("prob", "model"), ("baseline.grid_only.prob", "grid only")):
            if column not in pred:
                continue
            idx = np.clip(np.digitize(pred[column], bins) - 1, 0, len(bins) - 2)
            grouped = pred.groupby(idx).agg(p=(column, "mean"), y=("won", "mean"))
            ax.plot(grouped["p"], grouped["y"], "o-" if column == "prob" else "s:", label=label)
        ax.set(xlabel="predicted win probability", ylabel="observed win rate", title="Calibration")
        ax.legend()
    elif ev.model == "quali_order":
        ax.scatter(pred["quali_position"], pred["pred_rank"], s=8, alpha=0.4)
        ax.set(xlabel="actual qualifying position", ylabel="predicted rank", title="Predicted vs actual order")
    else:
        ax.scatter(pred["first_stop_lap"], pred["pred_lap"], s=8, alpha=0.4)
        top = float(np.nanmax(pred[["first_stop_lap", "pred_lap"]].to_numpy()))
        ax.plot([0, top], [0, top], "--", color="grey")
        ax.set(xlabel="actual first-stop lap", ylabel="predicted lap", title="Predicted vs actual first stop")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _plot_importance(fitted: FittedModel, path: Path, top: int = 20) -> pd.Series:
    imp = feature_importance(fitted).head(top)[::-1]
    fig, ax = plt.subplots(figsize=(6, 0.28 * len(imp) + 1))
    ax.barh(imp.index, imp.to_numpy())
    ax.set(title=f"Feature importance ({fitted.algorithm})")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return imp[::-1]


def _plot_per_race(per_race: pd.DataFrame, model: str, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(max(6, 0.35 * len(per_race)), 3.5))
    x = np.arange(len(per_race))
    if model == "race_winner":
        ax.bar(x - 0.2, per_race["hit"], width=0.4, label="model hit")
        if "baseline_hit" in per_race:
            ax.bar(x + 0.2, per_race["baseline_hit"], width=0.4, label="baseline hit")
        ax.set(ylabel="winner predicted", yticks=[0, 1])
    else:
        key = "spearman" if model == "quali_order" else "mae_laps"
        ax.plot(x, per_race[key], "o-", label="model")
        if f"baseline_{key}" in per_race:
            ax.plot(x, per_race[f"baseline_{key}"], "s--", label="baseline")
        ax.set(ylabel=key)
    ax.set_xticks(x, [r.split(" ", 1)[1][:14] for r in per_race["race"]], rotation=70, fontsize=7)
    ax.legend(fontsize=8)
    ax.set_title("Per-race results")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _fmt(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def write_card(folder: Path, context: dict[str, Any], ev: Evaluation, fitted: FittedModel) -> Path:
    """Write card.md and the plots into `folder`; `context` holds run facts (seasons, data hash...)."""
    folder.mkdir(parents=True, exist_ok=True)
    per_race = _per_race(ev)
    _plot_calibration(ev, folder / PLOTS[0])
    importance = _plot_importance(fitted, folder / PLOTS[1])
    _plot_per_race(per_race, ev.model, folder / PLOTS[2])
    seasons = per_season(ev)
    seasons.to_csv(folder / PER_SEASON, index=False)

    metric_names = [k for k in ev.metrics if k not in {"n_races", "n_stops"}]
    header = "| metric | model | " + " | ".join(ev.baselines) + " |"
    lines = [header, "|" + " --- |" * (2 + len(ev.baselines))]
    for name in metric_names:
        cells = [_fmt(ev.baselines[b].get(name, "–")) for b in ev.baselines]
        lines.append(f"| {name} | {_fmt(ev.metrics[name])} | " + " | ".join(cells) + " |")
    facts = "\n".join(f"- **{k}**: {v}" for k, v in context.items())
    folds = "\n".join(f"- {o.fold.name}: train {len(o.fold.train_races)} races, test {len(o.fold.test_races)} "
                      f"races, {ev.model} {_fmt(o.metrics.get(next(iter(o.metrics))))}" for o in ev.folds[:40])
    text = f"""# Model card: {ev.model} ({ev.algorithm})

{fitted.spec.description}.

## Run
{facts}
- **training rows / races**: {fitted.train_rows} / {fitted.train_races}, last race {fitted.train_end_date}
- **features** ({len(fitted.feature_names)}): {", ".join(fitted.feature_names)}

## Evaluation
Time-series only: every test race is predicted by a model trained on races strictly before it
(splits by race date, never shuffled). {len(ev.folds)} folds, {int(ev.metrics.get("n_races", 0))} test races.
Baselines are scored on the same races and fitted on the same training races.

{chr(10).join(lines)}

### Per season: model vs each baseline
Each season's races pooled; the verdict names every baseline figure the model is worse on
(also in `{PER_SEASON}`).

{_markdown(seasons)}

{folds}

## Per race
{_markdown(per_race.drop(columns=["raceId"]))}

## Most important features
{chr(10).join(f"- {name}: {value:.4f}" for name, value in importance.items())}

## Plots
![calibration](calibration.png)
![feature importance](feature_importance.png)
![per race](per_race.png)

## Limits
- Pre-race information only (history, qualifying, grid, sprint); no weather, tyres, lap times or
  practice pace: upsets from incidents, safety cars and strategy are beyond it.
- Data: Ergast-schema tables (non-commercial terms); features version {context.get("feature_version", "?")}.
"""
    (folder / "card.md").write_text(text)
    return folder


def _markdown(table: pd.DataFrame) -> str:
    """A GitHub markdown table (floats to 3 decimals), with no extra dependency."""
    head = "| " + " | ".join(map(str, table.columns)) + " |"
    rule = "|" + " --- |" * len(table.columns)
    rows = ["| " + " | ".join(_fmt(v.item() if hasattr(v, "item") else v) for v in row) + " |"
            for row in table.itertuples(index=False)]
    return "\n".join([head, rule, *rows])
