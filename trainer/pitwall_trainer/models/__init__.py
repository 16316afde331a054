"""The three models (race_winner, quali_order, pit_window) and the estimator factory."""
