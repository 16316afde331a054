"""`python -m pitwall_api crds --out crds` and `... docs --out docs/api.md`: regenerate, or
`--check` to fail (exit 1) when the checked-in files differ, as CI does."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from pitwall_api.crdgen import write_crds
from pitwall_api.docs import write_docs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pitwall_api", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    crds = sub.add_parser("crds", help="write the CRD YAMLs")
    crds.add_argument("--out", default="crds", help="folder (default: crds)")
    crds.add_argument("--check", action="store_true", help="compare with --out instead of writing")
    docs = sub.add_parser("docs", help="write the API reference")
    docs.add_argument("--out", default="docs/api.md", help="file (default: docs/api.md)")
    docs.add_argument("--check", action="store_true", help="compare with --out instead of writing")
    args = parser.parse_args(argv)

    if not args.check:
        written = write_crds(args.out) if args.command == "crds" else [write_docs(args.out)]
        for path in written:
            print(f"wrote {path}")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        if args.command == "crds":
            fresh = write_crds(tmp)
            pairs = [(p, Path(args.out) / p.name) for p in fresh]
        else:
            pairs = [(write_docs(Path(tmp) / "api.md"), Path(args.out))]
        stale = [str(old) for new, old in pairs if not old.is_file() or old.read_bytes() != new.read_bytes()]
    if stale:
        print(f"out of date (regenerate with `python -m pitwall_api {args.command} --out {args.out}`): "
              + ", ".join(stale), file=sys.stderr)
        return 1
    print("up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
