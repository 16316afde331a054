"""A local Kubernetes API and workload runner for tests and demos (see DESIGN.md, "Testing")."""

from .sandbox import DATA_CLAIM, DATA_CLAIM_ENV, Sandbox

__all__ = ["DATA_CLAIM", "DATA_CLAIM_ENV", "Sandbox"]
