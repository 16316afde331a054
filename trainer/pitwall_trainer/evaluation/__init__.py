"""Time-series evaluation: splits by race date, walk-forward folds, backtests, baselines, model cards."""
