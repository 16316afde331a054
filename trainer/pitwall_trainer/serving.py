"""What the registry serves: an MLflow pyfunc model that answers per race, as a user asks.

`mlflow.pyfunc.load_model("models:/pitwall-race_winner@champion").predict(entries)` takes the
feature rows of one race's entries (or of several races, told apart by a `raceId` column) and
returns one row per entry, in the input's order (feature columns are doubles, as the signature says):

* race_winner: `prob`, each driver's win probability; the probabilities of a race sum to 1.
* quali_order: `pred_rank` (1 = predicted pole) and `score` (higher = further up).
* pit_window: `pred_lap`, the predicted lap of the first stop.

Identifying columns given with the input (`raceId`, `driverId`, `driverRef`) are echoed back.
The model is the trainer's own `FittedModel` and the same `predict` the backtests score, so the
registry serves exactly what was evaluated.
"""

from __future__ import annotations

import os

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

import mlflow.pyfunc  # noqa: E402
import pandas as pd  # noqa: E402

from pitwall_trainer.models.factory import FittedModel, predict  # noqa: E402

ID_COLUMNS = ("raceId", "driverId", "driverRef")
OUTPUT_COLUMNS = {"race_winner": ["prob"], "quali_order": ["pred_rank", "score"], "pit_window": ["pred_lap"]}
ONE_RACE = -1  # raceId given to input rows without one: they are the entries of one race


class PitwallModel(mlflow.pyfunc.PythonModel):
    """A trained pitwall model as a pyfunc: feature rows of a race's entries in, one answer per entry out."""

    def __init__(self, fitted: FittedModel):
        self.fitted = fitted

    def predict(self, context, model_input, params=None):  # untyped: the signature is logged explicitly
        return predict_entries(self.fitted, pd.DataFrame(model_input))


def predict_entries(fitted: FittedModel, entries: pd.DataFrame) -> pd.DataFrame:
    """The model's answer per entry; rows without `raceId` are taken as one race."""
    missing = [c for c in fitted.feature_names if c not in entries]
    if missing:
        raise ValueError(f"input lacks feature columns: {', '.join(missing[:5])}"
                         + (f" and {len(missing) - 5} more" if len(missing) > 5 else ""))
    rows = entries.reset_index(drop=True)
    if "raceId" not in rows or rows["raceId"].isna().any():
        rows = rows.assign(raceId=rows["raceId"].fillna(ONE_RACE) if "raceId" in rows else ONE_RACE)
    rows = rows.astype({c: "float64" for c in fitted.feature_names})
    answer = predict(fitted, rows)[OUTPUT_COLUMNS[fitted.model]]
    echoed = [c for c in ID_COLUMNS if c in entries]
    return pd.concat([entries.reset_index(drop=True)[echoed], answer.reset_index(drop=True)], axis=1)


def input_example(fitted: FittedModel, rows: pd.DataFrame) -> pd.DataFrame:
    """One whole race's entries: the identifying columns and the model's features."""
    last = rows[rows["raceId"] == rows["raceId"].iloc[-1]]
    return last[[c for c in ID_COLUMNS if c in last] + list(fitted.feature_names)].reset_index(drop=True)
