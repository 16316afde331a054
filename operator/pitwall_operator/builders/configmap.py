"""The ConfigMap that hands a TrainingRun's spec to its trainer pod (mounted as a file)."""

from __future__ import annotations

from typing import Any

import yaml

from pitwall_operator.builders.meta import RunRef, metadata, spec_configmap_name

SPEC_KEY = "spec.yaml"


def build_spec_configmap(run: RunRef, spec: dict[str, Any]) -> dict[str, Any]:
    """`<run>-spec` with key `spec.yaml`: the trainer reads the same spec the user wrote."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(run, spec_configmap_name(run.name), "spec"),
        "data": {SPEC_KEY: yaml.safe_dump(spec, sort_keys=True)},
    }
