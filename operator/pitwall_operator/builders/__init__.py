"""Pure builders: TrainingRun spec (a plain dict, camelCase as in the CRD) -> Kubernetes objects.

No API calls and no clock reads here (callers pass `now`), so every field is unit-testable.
"""
