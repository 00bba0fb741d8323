"""pisec_is_file_as: a host's report leaves its file alone only when it
says exactly what pisec would write; anything forged or malformed makes the
writing task run."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from plugins.filter.pisec_files import is_file_as

AS_WRITTEN = {
    "exists": True,
    "owner": "root",
    "group": "root",
    "mode": "0644",
    "sha256": hashlib.sha256(b"trust\n").hexdigest(),
}


def test_the_file_as_written_is_left_alone() -> None:
    assert is_file_as(AS_WRITTEN, "root", "root", "0644", "trust\n")
    assert is_file_as(AS_WRITTEN, "root", "root", "644")
    assert is_file_as(AS_WRITTEN, "root", "root", 0o644)


@pytest.mark.parametrize(
    "report",
    [
        None,
        "exists",
        [],
        {**AS_WRITTEN, "exists": "yes"},
        {**AS_WRITTEN, "exists": False},
        {**AS_WRITTEN, "mode": "0664"},
        {**AS_WRITTEN, "mode": "644\n"},
        {**AS_WRITTEN, "mode": "0o644"},
        {**AS_WRITTEN, "mode": "٦٤٤"},
        {**AS_WRITTEN, "mode": 420.0},
        {**AS_WRITTEN, "owner": "mosquitto"},
        {**AS_WRITTEN, "group": ["root"]},
        {**AS_WRITTEN, "sha256": "0" * 64},
        {key: value for key, value in AS_WRITTEN.items() if key != "sha256"},
    ],
)
def test_a_forged_or_malformed_report_rewrites_the_file(report: Any) -> None:
    assert not is_file_as(report, "root", "root", "0644", "trust\n")


@pytest.mark.parametrize("mode", ["rw-r--r--", "99999", True, -1, 0o17777, ""])
def test_a_wanted_mode_that_is_not_one_never_matches(mode: Any) -> None:
    assert not is_file_as(AS_WRITTEN, "root", "root", mode)
