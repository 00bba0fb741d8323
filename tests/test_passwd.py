"""The password-file module against mosquitto's own format and tool."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import load_passwd_module

passwd: Any = load_passwd_module()


def test_reads_what_mosquitto_passwd_writes(tmp_path: Path) -> None:
    tool = shutil.which("mosquitto_passwd")
    assert tool is not None, "mosquitto_passwd is not installed: run `make deps`"
    path = tmp_path / "passwd"
    subprocess.run([tool, "-c", "-b", str(path), "sensor-01", "s3cret pass"], check=True)
    entries = passwd.parse_file(path.read_text())
    hashed = passwd.Pbkdf2Hash.parse(entries["sensor-01"])
    assert hashed is not None
    assert hashed.iterations == 101  # mosquitto_passwd's default, which pisec raises
    assert hashed.verifies("s3cret pass")
    assert not hashed.verifies("s3cret pasS")
    assert hashed.render() == entries["sensor-01"]


def test_new_hash_has_mosquittos_shape() -> None:
    hashed = passwd.Pbkdf2Hash.new("password", 50000)
    rendered = hashed.render()
    prefix, _, salt, digest = rendered[1:].split("$")
    assert prefix == "7" and rendered.startswith("$7$50000$")
    assert len(salt) == 16 and len(digest) == 88  # base64 of 12 and 64 bytes
    assert passwd.Pbkdf2Hash.parse(rendered) == hashed


def test_second_run_keeps_every_line() -> None:
    users = [("alice", "alice-password-1"), ("bob", "bob-password-22")]
    first = passwd.plan({}, users, 2000)
    assert first.added == ["alice", "bob"] and first.changed
    second = passwd.plan(passwd.parse_file("\n".join(first.lines)), users, 2000)
    assert not second.changed
    assert second.lines == first.lines


def test_changed_password_rewrites_that_line_only() -> None:
    users = [("alice", "alice-password-1"), ("bob", "bob-password-22")]
    first = passwd.plan({}, users, 2000)
    second = passwd.plan(
        passwd.parse_file("\n".join(first.lines)),
        [("alice", "alice-password-1"), ("bob", "a-new-password-for-bob")],
        2000,
    )
    assert second.updated == ["bob"] and second.added == [] and second.removed == []
    assert second.lines[0] == first.lines[0]
    assert second.lines[1] != first.lines[1]


def test_weaker_hash_is_upgraded_and_unlisted_user_removed() -> None:
    existing = {
        "alice": passwd.Pbkdf2Hash.new("alice-password-1", 1000).render(),
        "mallory": passwd.Pbkdf2Hash.new("whatever-it-was", 1000).render(),
    }
    result = passwd.plan(existing, [("alice", "alice-password-1")], 5000)
    assert result.updated == ["alice"]
    assert result.removed == ["mallory"]
    assert result.lines[0].startswith("alice:$7$5000$")


@given(st.text())
def test_parse_never_raises_on_garbage(text: str) -> None:
    for hashed in passwd.parse_file(text).values():
        parsed = passwd.Pbkdf2Hash.parse(hashed)
        assert parsed is None or parsed.render().startswith("$7$")


@pytest.mark.parametrize(
    "text",
    [
        "$6$abc$def",
        "$7$x$AAAA$BBBB",
        "$7$100$!!!$AAAA",
        "$7$100$AAAA$AAAA",
        "plain",
        "$7$0$AAAA$" + "A" * 88,
    ],
)
def test_foreign_or_broken_hashes_are_not_trusted(text: str) -> None:
    assert passwd.Pbkdf2Hash.parse(text) is None
