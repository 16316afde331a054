"""`python -m pitwall_trainer` is the same as `pitwall-train`."""

from pitwall_trainer.cli import main

raise SystemExit(main())
