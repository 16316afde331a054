"""What distinguishes the three models: target, rows, features, task and primary metric."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from pitwall_api.trainingrun import DEFAULT_ALGORITHM

CLASSIFY, RANK, REGRESS = "classify", "rank", "regress"


@dataclass(frozen=True)
class ModelSpec:
    name: str
    task: str  # classify | rank | regress
    target: str
    features: tuple[str, ...]
    primary_metric: str
    primary_mode: str  # max | min
    first_year: int  # default start of the training window (earlier seasons feed history features)
    floor_year: int  # no rows before this season: the features' inputs are missing or incomparable
    # raw estimator output -> the model's prediction column(s), given the rows predicted
    postprocess: Callable[[pd.DataFrame, np.ndarray], pd.DataFrame]
    description: str = ""
    # The CLI's and the TrainingRun's algorithm when none is given: the same for every model
    # (bench/race_winner_selection.md: chosen on per-race backtests of 2019-2023; 2024 is the check).
    default_algorithm: str = DEFAULT_ALGORITHM

    def rows(self, frame: pd.DataFrame) -> pd.Series:
        """Rows this model can learn from or be scored on (target present, modern enough)."""
        return frame[self.target].notna() & (frame["year"] >= self.floor_year)
