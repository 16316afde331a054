"""`python -m pitwall_kubectl` = `kubectl pitwall`."""

import sys

from pitwall_kubectl.cli import main

sys.exit(main())
