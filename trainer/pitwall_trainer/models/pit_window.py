"""pit_window: the lap of a driver's first strategy stop (red-flag tyre changes excluded).

The loader already drops red-flag "stops" (longer than a minute), so the target is the first
real stop; rows without any stop (retired early, no-stop races) are not targets. The prediction
is a whole lap: the estimator's value rounded (bench/race_winner_selection.md, pit_window).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pitwall_trainer.features import FEATURES
from pitwall_trainer.models.spec import REGRESS, ModelSpec


def _postprocess(rows: pd.DataFrame, raw: np.ndarray) -> pd.DataFrame:
    """A whole lap (stops happen on laps): ±3 laps around an integer covers 7 laps, around x.5 only 6."""
    pred = np.clip(np.rint(np.asarray(raw, dtype="float64")), 1.0, None)
    return pd.DataFrame({"score": pred, "pred_lap": pred}, index=rows.index)


SPEC = ModelSpec(
    name="pit_window",
    task=REGRESS,
    target="first_stop_lap",
    features=tuple(FEATURES),
    primary_metric="mae_laps",
    primary_mode="min",
    first_year=2014,
    floor_year=2012,  # pit stops recorded from 2011, history from 2012
    postprocess=_postprocess,
    description="first pit-stop lap per driver; red-flag stops excluded",
)
