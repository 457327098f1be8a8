"""``python -m grokescape``: the command line (see grokescape.cli)."""

from grokescape.cli import main

raise SystemExit(main())
