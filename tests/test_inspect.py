"""pisec inspect, compared with `openssl x509` on the same files."""

from __future__ import annotations

import json
import re
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from pisec.cli import main
from tests.certs import KEY_KINDS, SERVER_AUTH, build, name, new_key, server_sans

CA_BUNDLE_DIR = Path("/usr/share/ca-certificates")


def openssl_facts(path: Path, *, der: bool = False) -> dict[str, str]:
    """serial, fingerprint, dates and the -text lines we compare, from openssl."""
    form = ["-inform", "DER"] if der else []
    fields = subprocess.run(
        [
            "openssl",
            "x509",
            *form,
            "-in",
            str(path),
            "-noout",
            "-serial",
            "-fingerprint",
            "-sha256",
            "-startdate",
            "-enddate",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    text = subprocess.run(
        ["openssl", "x509", *form, "-in", str(path), "-noout", "-text"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    facts = dict(line.split("=", 1) for line in fields.strip().splitlines())
    facts["sigalg"] = re.search(r"Signature Algorithm: (\S+)", text).group(1)  # type: ignore[union-attr]
    san = re.search(r"X509v3 Subject Alternative Name:.*\n\s+(.*)\n", text)
    facts["san"] = san.group(1).strip() if san else ""
    return facts


def openssl_date(text: str) -> str:
    moment = datetime.strptime(text.replace("  ", " "), "%b %d %H:%M:%S %Y %Z")
    return moment.replace(tzinfo=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def inspect_json(capsys: pytest.CaptureFixture[str], *paths: Path) -> list[dict[str, Any]]:
    assert main(["inspect", "--json", *map(str, paths)]) == 0
    data: list[dict[str, Any]] = json.loads(capsys.readouterr().out)
    return data


def assert_agrees_with_openssl(entry: dict[str, Any], facts: dict[str, str]) -> None:
    assert entry["serial"] == facts["serial"]
    assert entry["fingerprint_sha256"] == facts["sha256 Fingerprint"]
    assert entry["not_before"] == openssl_date(facts["notBefore"])
    assert entry["not_after"] == openssl_date(facts["notAfter"])


@pytest.mark.parametrize("kind", KEY_KINDS)
def test_every_key_type_agrees_with_openssl(
    kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ca = build(name("test CA", "pisec"), new_key("p256"), ca=True, path_length=0)
    leaf = build(
        name("pi-01"),
        new_key(kind),
        issuer=ca,
        sans=server_sans(),
        eku=SERVER_AUTH,
        serial=0x00FF01,  # a leading zero byte: openssl prints 00FF01
    )
    path, _ = leaf.write(tmp_path, "leaf")
    [entry] = inspect_json(capsys, path)
    facts = openssl_facts(path)
    assert_agrees_with_openssl(entry, facts)
    assert entry["serial"] == "FF01"
    assert entry["signature_algorithm"] == facts["sigalg"] == "ecdsa-with-SHA256"
    assert ", ".join(entry["san"]) == facts["san"]
    assert entry["san"][3] == "IP Address:2001:DB8:0:0:0:0:0:5"
    expected_key = {
        "rsa2048": {"type": "RSA", "bits": 2048, "curve": None},
        "p256": {"type": "EC", "bits": 256, "curve": "P-256"},
        "p384": {"type": "EC", "bits": 384, "curve": "P-384"},
        "ed25519": {"type": "Ed25519", "bits": 256, "curve": None},
        "ed448": {"type": "Ed448", "bits": 456, "curve": None},
        "dsa2048": {"type": "DSA", "bits": 2048, "curve": None},
    }[kind]
    assert entry["public_key"] == expected_key
    assert entry["extended_key_usage"] == ["TLS Web Server Authentication"]
    assert entry["key_usage"] == ["Digital Signature"]
    assert entry["is_ca"] is False and entry["self_signed"] is False
    assert entry["kind"] == "certificate"


@pytest.mark.parametrize("kind", KEY_KINDS)
def test_self_signed_signature_algorithm_matches_openssl(
    kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ca = build(name(f"{kind} CA"), new_key(kind), ca=True, path_length=1, every_extension=True)
    path, _ = ca.write(tmp_path, "ca")
    [entry] = inspect_json(capsys, path)
    facts = openssl_facts(path)
    assert_agrees_with_openssl(entry, facts)
    assert entry["signature_algorithm"] == facts["sigalg"]
    assert entry["is_ca"] is True and entry["path_length"] == 1
    assert entry["self_signed"] is True
    assert entry["key_usage"] == ["Certificate Sign", "CRL Sign"]
    names = [extension["name"] for extension in entry["extensions"]]
    assert "X509v3 CRL Distribution Points" in names
    assert "X509v3 Name Constraints" in names
    assert "1.3.6.1.4.1.55555.1" in names


def test_text_output_has_openssls_sections(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ca = build(name("test CA"), new_key("p256"), ca=True, every_extension=True)
    path, _ = ca.write(tmp_path, "ca")
    assert main(["inspect", str(path)]) == 0
    ours = capsys.readouterr().out
    theirs = subprocess.run(
        ["openssl", "x509", "-in", str(path), "-noout", "-text"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for line in theirs.splitlines():
        stripped = line.strip()
        if re.match(
            r"^(Version|Signature Algorithm|Issuer|Not Before|Not After|Subject|"
            r"Public Key Algorithm|ASN1 OID|NIST CURVE|X509v3 |CA:TRUE|"
            r"Certificate Sign|Full Name|URI:|Permitted|DNS:example)",
            stripped,
        ):
            assert stripped in ours, f"openssl's line {stripped!r} is missing"
    assert "\033[" not in ours  # plain when piped
    assert "self-signed" in ours and "SHA-256 Fingerprint:" in ours


def test_bundle_der_and_csr_in_file_order(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ca = build(name("test CA"), new_key("p256"), ca=True)
    leaf = build(name("pi-01"), new_key("rsa2048"), issuer=ca, sans=server_sans())
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(
        leaf.certificate.public_bytes(serialization.Encoding.PEM)
        + b"some text between blocks\n"
        + ca.certificate.public_bytes(serialization.Encoding.PEM)
    )
    der = tmp_path / "ca.der"
    der.write_bytes(ca.certificate.public_bytes(serialization.Encoding.DER))
    key = new_key("p256")
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pi-02")]))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("pi-02")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    csr_path = tmp_path / "pi-02.csr"
    csr_path.write_bytes(csr.public_bytes(serialization.Encoding.PEM))
    entries = inspect_json(capsys, bundle, der, csr_path)
    assert [(e["kind"], e["subject"], e["index"]) for e in entries] == [
        ("certificate", "CN=pi-01", 1),
        ("certificate", "CN=test CA", 2),
        ("certificate", "CN=test CA", 1),
        ("csr", "CN=pi-02", 1),
    ]
    assert_agrees_with_openssl(entries[2], openssl_facts(der, der=True))
    assert entries[3]["san"] == ["DNS:pi-02"] and entries[3]["signature_valid"] is True
    assert entries[3]["serial"] is None and entries[3]["days_left"] is None


def test_days_left_of_an_expired_certificate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    past = datetime(2020, 1, 1, tzinfo=UTC)
    old = build(
        name("old"), new_key("p256"), not_before=past, not_after=datetime(2021, 1, 1, tzinfo=UTC)
    )
    path, _ = old.write(tmp_path, "old")
    [entry] = inspect_json(capsys, path)
    assert entry["days_left"] < -1000
    assert entry["not_after"] == "2021-01-01T00:00:00Z"


def _system_certificates() -> list[Path]:
    return sorted(p for p in CA_BUNDLE_DIR.rglob("*.crt") if p.is_file())


def test_every_system_ca_certificate_agrees_with_openssl(
    capsys: pytest.CaptureFixture[str],
) -> None:
    paths = _system_certificates()
    assert len(paths) > 50, f"{CA_BUNDLE_DIR}: expected the ca-certificates package"
    entries = inspect_json(capsys, *paths)
    assert len(entries) == len(paths)
    for path, entry in zip(paths, entries, strict=True):
        facts = openssl_facts(path)
        assert_agrees_with_openssl(entry, facts)
        assert entry["signature_algorithm"] == facts["sigalg"], path
