"""quali_order: the qualifying order of a race, predicted before qualifying (a ranking per race).

Only HISTORY features: the race's own qualifying, grid and sprint come after the prediction.
XGBoost learns to rank with qid = race; other algorithms regress the position and sort.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pitwall_trainer.features import HISTORY_FEATURES
from pitwall_trainer.models.spec import RANK, ModelSpec


def _postprocess(rows: pd.DataFrame, raw: np.ndarray) -> pd.DataFrame:
    score = np.asarray(raw, dtype="float64")  # higher = further up the order
    rank = pd.Series(score, index=rows.index).groupby(rows["raceId"]).rank(ascending=False, method="first")
    return pd.DataFrame({"score": score, "pred_rank": rank}, index=rows.index)


def relevance(position: pd.Series) -> np.ndarray:
    """Ranking label: pole is most relevant; positions beyond 30 count as 0."""
    return (31 - position).clip(lower=0).fillna(0).astype(int).to_numpy()


SPEC = ModelSpec(
    name="quali_order",
    task=RANK,
    target="quali_position",
    features=tuple(HISTORY_FEATURES),
    primary_metric="ndcg_at_10",
    primary_mode="max",
    first_year=2014,
    floor_year=2006,  # knockout qualifying from 2006
    postprocess=_postprocess,
    description="qualifying order per race from history only (before the weekend)",
)
