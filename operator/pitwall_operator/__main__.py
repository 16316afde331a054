"""`python -m pitwall_operator [kopf run options]`: the operator.

Standalone (one replica) unless PITWALL_PEERING names a KopfPeering; the namespaces in
PITWALL_NAMESPACES (comma-separated), else all. Command-line options win over both.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> None:
    import kopf.cli

    from pitwall_operator.config import Settings

    settings = Settings.from_env()
    args = list(sys.argv[1:] if argv is None else argv)
    if not any(a in args for a in ("--standalone", "--peering", "--priority")):
        args[:0] = ["--peering", settings.peering] if settings.peering else ["--standalone"]
    if not any(a in args for a in ("--namespace", "-n", "--all-namespaces", "-A")):
        scope = [x for ns in settings.namespaces for x in ("--namespace", ns)]
        args[:0] = scope or ["--all-namespaces"]
    kopf.cli.main(["run", "-m", "pitwall_operator.handlers", *args], standalone_mode=True)


if __name__ == "__main__":
    main()
