"""`kubectl pitwall`: a kubectl plugin to watch TrainingRuns and RetrainPolicies (dashboard, logs, describe)."""
