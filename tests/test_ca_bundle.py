"""The CA host's one-call reader of CA certificates and CRLs (pisec_ca_bundle)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import load_plugin_module

bundle: Any = load_plugin_module("pisec_ca_bundle")

GENERATIONS = [".previous", "", ".next"]


def write_generation(ca_dir: Path, suffix: str, tag: str) -> None:
    directory = Path(f"{ca_dir}{suffix}")
    directory.mkdir(parents=True)
    (directory / "ca.crt").write_text(
        f"-----BEGIN CERTIFICATE-----\n{tag}\n-----END CERTIFICATE-----\n", encoding="ascii"
    )
    (directory / "ca.crl").write_text(
        f"-----BEGIN X509 CRL-----\n{tag}\n-----END X509 CRL-----\n", encoding="ascii"
    )
    (directory / "ca.key").write_text("-----BEGIN PRIVATE KEY-----\nsecret\n", encoding="ascii")


def test_current_generation_only(tmp_path: Path) -> None:
    write_generation(tmp_path / "ca", "", "current")
    found = bundle.read_bundle(str(tmp_path / "ca"), GENERATIONS)
    assert [entry["exists"] for entry in found] == [False, True, False]
    assert "current" in found[1]["certificate"]
    assert "BEGIN X509 CRL" in found[1]["crl"] and "current" in found[1]["crl"]
    assert found[0] == {"suffix": ".previous", "exists": False, "certificate": "", "crl": ""}


def test_rollover_keeps_the_order_given_and_never_reads_keys(tmp_path: Path) -> None:
    for suffix, tag in ((".previous", "old"), ("", "current"), (".next", "new")):
        write_generation(tmp_path / "ca", suffix, tag)
    found = bundle.read_bundle(str(tmp_path / "ca") + "/", GENERATIONS)
    assert [entry["suffix"] for entry in found] == GENERATIONS
    assert ["old" in found[0]["certificate"], "new" in found[2]["crl"]] == [True, True]
    assert all("PRIVATE KEY" not in str(entry) for entry in found)


def test_no_ca_at_all_is_not_an_error(tmp_path: Path) -> None:
    found = bundle.read_bundle(str(tmp_path / "missing"), GENERATIONS)
    assert not any(entry["exists"] for entry in found)


def test_certificate_without_crl_names_the_file(tmp_path: Path) -> None:
    write_generation(tmp_path / "ca", "", "current")
    (tmp_path / "ca" / "ca.crl").unlink()
    with pytest.raises(ValueError, match=r"ca/ca\.crl: missing beside"):
        bundle.read_bundle(str(tmp_path / "ca"), GENERATIONS)


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("ca.crt", "hello\n", r"ca\.crt: not a PEM certificate"),
        ("ca.crl", "-----BEGIN CERTIFICATE-----\n", r"ca\.crl: not a PEM CRL"),
    ],
)
def test_wrong_content_names_the_file(tmp_path: Path, name: str, text: str, message: str) -> None:
    write_generation(tmp_path / "ca", "", "current")
    (tmp_path / "ca" / name).write_text(text, encoding="ascii")
    with pytest.raises(ValueError, match=message):
        bundle.read_bundle(str(tmp_path / "ca"), GENERATIONS)


def test_binary_file_names_the_file(tmp_path: Path) -> None:
    write_generation(tmp_path / "ca", "", "current")
    (tmp_path / "ca" / "ca.crt").write_bytes(b"\x30\x82\x01\xff DER, not PEM")
    with pytest.raises(ValueError, match=r"ca/ca\.crt: not ASCII"):
        bundle.read_bundle(str(tmp_path / "ca"), GENERATIONS)


def test_oversized_file_is_refused(tmp_path: Path) -> None:
    write_generation(tmp_path / "ca", "", "current")
    (tmp_path / "ca" / "ca.crl").write_text("A" * (bundle.MAX_BYTES + 1), encoding="ascii")
    with pytest.raises(ValueError, match="larger than"):
        bundle.read_bundle(str(tmp_path / "ca"), GENERATIONS)


def test_a_suffix_may_not_be_a_path(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="generations: '/etc' is a suffix"):
        bundle.read_bundle(str(tmp_path / "ca"), ["/etc"])
