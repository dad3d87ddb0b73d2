"""The fault soak's small filesystem: a tmpfs for the daemon's state file, and filling it.

When the soak runs as root and ``mount -t tmpfs -o size=64m`` works, `tmpfs` mounts one at
``<tmp>/disk`` for the daemon's state file (`soak_config.daemon_config`) and unmounts it on the
way out, Ctrl-C included. Otherwise the lane is skipped and says why (`DiskSpace.reason`); no
tool requirement (``REQUIRE_TOOLS``) applies to it. `fill` writes a filler file until ENOSPC,
`free` deletes it. When to fill and what the daemon showed meanwhile is `soak_disk`'s.
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

TMPFS_SIZE = "64m"
FILLER = "filler.bin"


@dataclass(frozen=True)
class DiskSpace:
    """Where the state file lives: a mounted tmpfs (`reason` None) or why there is none."""

    folder: Path
    reason: str | None

    @property
    def available(self) -> bool:
        """True when disk_full can be injected."""
        return self.reason is None


def _mount(folder: Path) -> str | None:
    """Mount a tmpfs at `folder`; None when it worked, else why not."""
    if os.geteuid() != 0:
        return "not root: a tmpfs for the state file needs mount(8) as root"
    command = ["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE},mode=0700", "tmpfs", str(folder)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"mount -t tmpfs failed: {exc}"
    if done.returncode != 0:
        return f"mount -t tmpfs failed: {(done.stderr or done.stdout).strip() or done.returncode}"
    return None


def _unmount(folder: Path) -> None:
    """Unmount, lazily if something still holds it open; say so if neither works."""
    for command in (["umount", str(folder)], ["umount", "-l", str(folder)]):
        done = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
        if done.returncode == 0:
            return
    print(f"soak: could not unmount the tmpfs at {folder}: {done.stderr.strip()}", file=sys.stderr)


@contextlib.contextmanager
def tmpfs(tmp: Path) -> Iterator[DiskSpace]:
    """A tmpfs at `tmp`/disk for the state file, unmounted on exit; or the reason it is not."""
    folder = tmp / "disk"
    folder.mkdir(exist_ok=True)
    reason = _mount(folder)
    try:
        yield DiskSpace(folder, reason)
    finally:
        if reason is None:
            _unmount(folder)


def fill(folder: Path) -> int:
    """Append to the filler file until ENOSPC (1 MiB, then 4 KiB writes); the bytes written."""
    written = 0
    with (folder / FILLER).open("ab", buffering=0) as out:
        for size in (1 << 20, 1 << 12):
            chunk = bytes(size)
            while True:
                try:
                    written += out.write(chunk) or 0
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break
    return written


def free(folder: Path) -> None:
    """Delete the filler: space returns."""
    (folder / FILLER).unlink(missing_ok=True)
