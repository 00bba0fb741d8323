"""Whether a file a host reports on is already what pisec would write.

The report comes from the host (pisec_host_cert_state) and may be forged;
a forged report can only make pisec leave that host's own file alone, and
anything malformed counts as "not as wanted", so the task that writes the
file runs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from typing import Any


def _mode(value: Any) -> str | None:
    """A mode as four octal digits: "0640", "640" and 0o640 (an unquoted YAML 0640) alike."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return f"{value:04o}" if 0 <= value <= 0o7777 else None
    text = str(value)
    if not text.isascii() or not text.isdigit() or set(text) - set("01234567") or len(text) > 4:
        return None
    return text.rjust(4, "0")


def is_file_as(report: Any, owner: Any, group: Any, mode: Any, content: str | None = None) -> bool:
    """Whether the reported entry exists with this owner, group and mode (and,
    given `content`, holds exactly it: its SHA-256 is compared)."""
    if not isinstance(report, Mapping) or report.get("exists") is not True:
        return False
    wanted = _mode(mode)
    if wanted is None or _mode(report.get("mode")) != wanted:
        return False
    if report.get("owner") != str(owner) or report.get("group") != str(group):
        return False
    if content is not None:
        digest = hashlib.sha256(str(content).encode("utf-8")).hexdigest()
        if report.get("sha256") != digest:
            return False
    return True


def file_unchanged(
    seen: Any, path: str, wanted: Mapping[str, Any], content: str | None = None
) -> bool:
    """Whether `seen[path]` (a host's report) is already `wanted[path]`
    (owner, group, mode) and, given `content`, holds exactly it."""
    if not isinstance(seen, Mapping) or path not in wanted:
        return False
    spec = wanted[path]
    return is_file_as(seen.get(path), spec["owner"], spec["group"], spec["mode"], content)


class FilterModule:
    """pisec filters for files a host reports on."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {"pisec_is_file_as": is_file_as, "pisec_file_unchanged": file_unchanged}
