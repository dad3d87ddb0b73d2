"""`python -m monitor` runs the command line, the same as the `dli-monitor` script."""

from monitor.cli import main

raise SystemExit(main())
