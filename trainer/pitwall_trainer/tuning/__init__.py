"""Hyperparameter tuning with Ray Tune (OptunaSearch + ASHA) or Optuna (TPE + pruner).

`tune(...)` is the entry point (see api.py); engines are imported only when used, so the
trainer starts without loading Ray.
"""

from pitwall_trainer.tuning.api import tune, tune_from_block, tune_from_spec
from pitwall_trainer.tuning.results import TrialRecord, TuneResult
from pitwall_trainer.tuning.tracking import MlflowSettings

__all__ = ["MlflowSettings", "TrialRecord", "TuneResult", "tune", "tune_from_block", "tune_from_spec"]
