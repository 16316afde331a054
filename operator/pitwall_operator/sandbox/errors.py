"""Kubernetes `Status` errors with the reasons and messages a real API server uses."""

from __future__ import annotations

from typing import Any

from kmock import KubernetesError

from .kinds import Kind


def _details(kind: Kind, name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "group": kind.group, "kind": kind.plural} | extra


def not_found(kind: Kind, name: str) -> KubernetesError:
    return KubernetesError(404, "NotFound", f'{kind.resource_name} "{name}" not found', _details(kind, name))


def already_exists(kind: Kind, name: str) -> KubernetesError:
    return KubernetesError(409, "AlreadyExists", f'{kind.resource_name} "{name}" already exists',
                           _details(kind, name))


def conflict(kind: Kind, name: str, why: str = "the object has been modified; please apply your "
             "changes to the latest version and try again") -> KubernetesError:
    return KubernetesError(409, "Conflict", f'Operation cannot be fulfilled on {kind.resource_name} "{name}": {why}',
                           _details(kind, name))


def invalid(kind: Kind, name: str, causes: list[tuple[str, str]]) -> KubernetesError:
    """422 Invalid: `Kind.group "name" is invalid: field: message, ...` with one cause per field."""
    text = ", ".join(f"{field}: {message}" for field, message in causes)
    group = f".{kind.group}" if kind.group else ""
    return KubernetesError(422, "Invalid", f'{kind.kind}{group} "{name}" is invalid: {text}', _details(
        kind, name) | dict(kind=kind.kind, causes=[{"reason": "FieldValueInvalid", "message": m, "field": f} for f, m in causes]))


def bad_request(message: str) -> KubernetesError:
    return KubernetesError(400, "BadRequest", message, {})


def unprocessable(message: str) -> KubernetesError:
    return KubernetesError(422, "UnprocessableEntity", message, {})


def gone(message: str) -> KubernetesError:
    return KubernetesError(410, "Expired", message, {})


def status_body(error: KubernetesError) -> dict[str, Any]:
    """The `Status` object a real server returns (also the object of a watch ERROR event)."""
    return {"apiVersion": "v1", "kind": "Status", "metadata": {}, "status": "Failure",
            "message": error.message, "reason": error.reason, "details": error.details or {},
            "code": error.status}
