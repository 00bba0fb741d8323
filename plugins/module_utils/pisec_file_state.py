"""What a host's file or directory is, for the controller to compare.

Shared by the read-only modules that report a host's state in one run
(pisec_host_cert_state, pisec_mosquitto_support). The controller compares
the report with what it would write (plugins/filter/pisec_files.py) and
runs the writing task only where they differ; a report is the host's
claim, and a forged one can only leave that host's own file alone.
"""

from __future__ import annotations

import grp
import hashlib
import os
import pwd
import stat
from typing import Any

# Files pisec writes are small; a larger one is reported without a checksum.
MAX_DIGEST_BYTES = 1 << 20


def _name(lookup: Any, number: int) -> str:
    try:
        return str(lookup(number)[0])
    except KeyError:
        return str(number)


def file_state(path: str, kind: str = "") -> dict[str, Any]:
    """Owner, group and mode (four octal digits) of `path`, not followed; for
    a regular file also its SHA-256. `kind` "file" or "directory" reports an
    entry of the other kind (or a symlink) as not existing."""
    try:
        info = os.lstat(path)
    except OSError:
        return {"exists": False}
    is_file, is_dir = stat.S_ISREG(info.st_mode), stat.S_ISDIR(info.st_mode)
    if (kind == "file" and not is_file) or (kind == "directory" and not is_dir):
        return {"exists": False}
    if not (is_file or is_dir):
        return {"exists": False}
    found: dict[str, Any] = {
        "exists": True,
        "owner": _name(pwd.getpwuid, info.st_uid),
        "group": _name(grp.getgrgid, info.st_gid),
        "mode": f"{stat.S_IMODE(info.st_mode):04o}",
    }
    if is_file and info.st_size <= MAX_DIGEST_BYTES:
        try:
            with open(path, "rb") as handle:
                found["sha256"] = hashlib.sha256(handle.read(MAX_DIGEST_BYTES + 1)).hexdigest()
        except OSError:
            return {"exists": False}
    return found
