"""Retraining signals: is the champion stale (new races, new rows), worse (accuracy drift), or is its input moving (PSI)?

`signals.compute_signals` is what `pitwall-train monitor` prints and what the RetrainPolicy's monitoring
Job writes into the policy's status; `policy_backtest` replays retraining policies over a season.
"""
