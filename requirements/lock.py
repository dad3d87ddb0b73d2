"""Turn a `pip install --dry-run --report` JSON into fully pinned constraints (stdout).

Usage (see the header of requirements/runtime.txt and test.txt)::

    python3 -m pip install --dry-run --ignore-installed --quiet --report /tmp/r.json '.[test]'
    python3 requirements/lock.py /tmp/r.json > requirements/test.txt

The header lines of the target file are kept as they are printed here.
"""

from __future__ import annotations

import json
import sys

HEADER = "# Fully pinned constraints; regenerate with requirements/lock.py (see its docstring).\n"


def main(report_path: str) -> None:
    """Print one `name==version` line per package pip would install, the project excluded."""
    with open(report_path, encoding="utf-8") as handle:
        report = json.load(handle)
    pins = sorted(
        (item["metadata"]["name"], item["metadata"]["version"])
        for item in report["install"]
        if item["metadata"]["name"].lower() != "dli-batch-monitor"
    )
    sys.stdout.write(HEADER + "".join(f"{name}=={version}\n" for name, version in pins))


if __name__ == "__main__":
    main(sys.argv[1])
