"""pisec verify: each check against certificates made for it."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtensionOID

from pisec.cli import main
from tests.certs import (
    CLIENT_AUTH,
    SERVER_AUTH,
    Pair,
    build,
    name,
    new_key,
    openssl_sm2,
    server_sans,
)


@pytest.fixture
def fleet(tmp_path: Path) -> dict[str, Any]:
    ca = build(name("fleet CA", "pisec"), new_key("p256"), ca=True, path_length=1)
    intermediate = build(name("site CA"), new_key("p256"), issuer=ca, ca=True, path_length=0)
    leaf = build(name("pi-01"), new_key("p256"), issuer=ca, sans=server_sans(), eku=SERVER_AUTH)
    via = build(
        name("pi-02"),
        new_key("rsa2048"),
        issuer=intermediate,
        sans=[x509.DNSName("pi-02")],
        eku=SERVER_AUTH,
    )
    ca_path, _ = ca.write(tmp_path, "ca")
    leaf_path, leaf_key = leaf.write(tmp_path, "leaf")
    chained = tmp_path / "pi-02-chain.pem"
    chained.write_bytes(
        via.certificate.public_bytes(serialization.Encoding.PEM)
        + intermediate.certificate.public_bytes(serialization.Encoding.PEM)
    )
    return {
        "ca": ca,
        "ca_path": ca_path,
        "leaf": leaf,
        "leaf_path": leaf_path,
        "leaf_key": leaf_key,
        "chained": chained,
        "tmp": tmp_path,
    }


def run(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, dict[str, str]]:
    code = main(["verify", "--json", *map(str, args)])
    data = json.loads(capsys.readouterr().out)
    return code, {
        check["name"]: f"{check['status']}: {check['detail']}" for check in data["checks"]
    }


def openssl_verify(ca: Path, cert: Path, *extra: str) -> bool:
    return (
        subprocess.run(
            ["openssl", "verify", "-CAfile", str(ca), *extra, str(cert)],
            capture_output=True,
            check=False,
        ).returncode
        == 0
    )


def test_everything_passes(fleet: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    code, checks = run(
        capsys,
        fleet["leaf_path"],
        "--ca",
        fleet["ca_path"],
        "--key",
        fleet["leaf_key"],
        "--host",
        "pi-01.farm.example",
    )
    assert code == 0, checks
    assert checks["chain"] == "pass: CN = pi-01 -> O = pisec, CN = fleet CA"
    assert checks["key"].startswith("pass")
    assert checks["host"] == "pass: DNS:pi-01.farm.example is in the SAN"
    assert checks["validity"].startswith("pass") and checks["purpose"].startswith("pass")
    assert checks["revocation"] == "skip: no --crl given"
    assert openssl_verify(fleet["ca_path"], fleet["leaf_path"])


def test_intermediate_in_the_cert_file(
    fleet: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    code, checks = run(capsys, fleet["chained"], "--ca", fleet["ca_path"], "--host", "pi-02")
    assert code == 0, checks
    assert checks["chain"] == "pass: CN = pi-02 -> CN = site CA -> O = pisec, CN = fleet CA"
    assert openssl_verify(fleet["ca_path"], fleet["chained"], "-untrusted", str(fleet["chained"]))


def test_other_ca(fleet: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    other = build(name("fleet CA", "pisec"), new_key("p256"), ca=True)  # same name, other key
    other_path, _ = other.write(fleet["tmp"], "other")
    code, checks = run(capsys, fleet["leaf_path"], "--ca", other_path)
    assert code == 1
    assert checks["chain"].startswith("fail: no issuer for O = pisec, CN = fleet CA")
    assert not openssl_verify(other_path, fleet["leaf_path"])


def test_wrong_host_and_ip(fleet: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    code, checks = run(capsys, fleet["leaf_path"], "--ca", fleet["ca_path"], "--host", "pi-99")
    assert code == 1 and checks["host"] == "fail: pi-99 is not in the SAN"
    code, checks = run(
        capsys, fleet["leaf_path"], "--ca", fleet["ca_path"], "--host", "2001:db8::5"
    )
    assert code == 0 and checks["host"] == "pass: IP Address:2001:db8::5 is in the SAN"
    assert openssl_verify(fleet["ca_path"], fleet["leaf_path"], "-verify_ip", "2001:db8::5")
    assert not openssl_verify(fleet["ca_path"], fleet["leaf_path"], "-verify_hostname", "pi-99")


def test_wrong_key(fleet: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    _, other_key = Pair(new_key("p256"), fleet["leaf"].certificate).write(fleet["tmp"], "stranger")
    code, checks = run(capsys, fleet["leaf_path"], "--ca", fleet["ca_path"], "--key", other_key)
    assert code == 1 and checks["key"] == f"fail: {other_key} does not belong to this certificate"


@pytest.mark.parametrize(
    ("offset", "expected"),
    [(timedelta(days=-3), "is not valid before"), (timedelta(days=200), "expired")],
)
def test_validity_at_a_time(
    fleet: dict[str, Any], capsys: pytest.CaptureFixture[str], offset: timedelta, expected: str
) -> None:
    at = (datetime.now(UTC) + offset).strftime("%Y-%m-%dT%H:%M:%SZ")
    code, checks = run(capsys, fleet["leaf_path"], "--ca", fleet["ca_path"], "--at", at)
    assert code == 1 and expected in checks["validity"]
    epoch = str(int((datetime.now(UTC) + offset).timestamp()))
    assert not openssl_verify(fleet["ca_path"], fleet["leaf_path"], "-attime", epoch)


def test_client_purpose(fleet: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    client = build(name("sensor-01"), new_key("ed25519"), issuer=fleet["ca"], eku=CLIENT_AUTH)
    path, _ = client.write(fleet["tmp"], "client")
    code, checks = run(capsys, path, "--ca", fleet["ca_path"])
    assert code == 1 and "does not allow TLS server" in checks["purpose"]
    code, checks = run(capsys, path, "--ca", fleet["ca_path"], "--client")
    assert code == 0 and checks["purpose"] == "pass: fit for TLS client authentication"
    assert not openssl_verify(fleet["ca_path"], path, "-purpose", "sslserver")
    assert openssl_verify(fleet["ca_path"], path, "-purpose", "sslclient")


def _crl(ca: Pair, revoked: list[int], next_update: timedelta) -> bytes:
    now = datetime.now(UTC)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.certificate.subject)
        .last_update(now - timedelta(hours=1))
        .next_update(now + next_update)
    )
    for serial in revoked:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(serial)
            .revocation_date(now - timedelta(minutes=30))
            .build()
        )
    return builder.sign(ca.key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def test_revoked(fleet: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    crl = fleet["tmp"] / "ca.crl"
    crl.write_bytes(_crl(fleet["ca"], [fleet["leaf"].certificate.serial_number], timedelta(days=7)))
    code, checks = run(capsys, fleet["leaf_path"], "--ca", fleet["ca_path"], "--crl", crl)
    assert code == 1 and checks["revocation"].startswith("fail: revoked on ")
    bundle = fleet["tmp"] / "ca-and-crl.pem"
    bundle.write_bytes(fleet["ca_path"].read_bytes() + crl.read_bytes())
    assert not openssl_verify(bundle, fleet["leaf_path"], "-crl_check")

    crl.write_bytes(_crl(fleet["ca"], [12345], timedelta(days=7)))
    code, checks = run(capsys, fleet["leaf_path"], "--ca", fleet["ca_path"], "--crl", crl)
    assert code == 0 and checks["revocation"] == f"pass: not listed in {crl}"


def test_stale_or_foreign_crl(fleet: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    crl = fleet["tmp"] / "stale.crl"
    crl.write_bytes(_crl(fleet["ca"], [], timedelta(minutes=-5)))
    code, checks = run(capsys, fleet["leaf_path"], "--ca", fleet["ca_path"], "--crl", crl)
    assert code == 1 and checks["revocation"].startswith("fail: the CRL expired")
    stranger = build(name("fleet CA", "pisec"), new_key("p256"), ca=True)
    crl.write_bytes(_crl(stranger, [], timedelta(days=1)))
    code, checks = run(capsys, fleet["leaf_path"], "--ca", fleet["ca_path"], "--crl", crl)
    assert code == 1 and "was not issued by the certificate's issuer" in checks["revocation"]


def test_text_output(fleet: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        ["verify", str(fleet["leaf_path"]), "--ca", str(fleet["ca_path"]), "--host", "pi-01"]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "PASS  chain" in out and "SKIP  key" in out and "PASS  host" in out


def test_bad_time_is_an_input_error(
    fleet: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        ["verify", str(fleet["leaf_path"]), "--ca", str(fleet["ca_path"]), "--at", "tuesday"]
    )
    assert code == 2
    assert capsys.readouterr().err == "pisec: error: --at: 'tuesday' is not an ISO 8601 time\n"


def test_key_where_certificate_belongs(
    fleet: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["verify", str(fleet["leaf_key"]), "--ca", str(fleet["ca_path"])])
    assert code == 2
    assert capsys.readouterr().err == (
        f"pisec: error: {fleet['leaf_key']}: holds a private key, not a certificate or CSR\n"
    )


def test_damaged_extension_is_an_input_error(
    fleet: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    """openssl verify refuses such a certificate ("invalid certificate"); so does pisec."""
    now = datetime.now(UTC)
    ca: Pair = fleet["ca"]
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name("pi-09"))
        .issuer_name(ca.certificate.subject)
        .public_key(new_key("p256").public_key())
        .serial_number(9)
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=3))
        .add_extension(
            x509.UnrecognizedExtension(ExtensionOID.SUBJECT_ALTERNATIVE_NAME, b"\x05\x00"),
            critical=False,
        )
        .sign(ca.key, hashes.SHA256())
    )
    path = fleet["tmp"] / "badsan.pem"
    path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    code = main(["verify", str(path), "--ca", str(fleet["ca_path"]), "--host", "pi-09"])
    assert code == 2
    assert capsys.readouterr().err == (
        f"pisec: error: {path}: certificate 1 (CN = pi-09): "
        "X509v3 Subject Alternative Name extension is damaged (unexpected ASN.1 tag)\n"
    )
    assert not openssl_verify(fleet["ca_path"], path)


def test_unsupported_signature_algorithm_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sm2 = openssl_sm2(tmp_path)
    code, checks = run(capsys, sm2, "--ca", sm2)
    assert code == 1
    assert checks["chain"] == (
        "fail: cannot check the signature on CN = sm2: "
        "pisec does not support its algorithm or its issuer's key"
    )


def test_trusted_certificate_as_the_ca(
    fleet: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    trusted = fleet["tmp"] / "trusted-ca.pem"
    subprocess.run(
        [
            *("openssl", "x509", "-in", str(fleet["ca_path"]), "-out", str(trusted)),
            *("-trustout", "-addtrust", "serverAuth"),
        ],
        check=True,
    )
    code, checks = run(capsys, fleet["leaf_path"], "--ca", trusted, "--host", "pi-01")
    assert code == 0, checks
    assert checks["chain"] == "pass: CN = pi-01 -> O = pisec, CN = fleet CA"
    assert openssl_verify(trusted, fleet["leaf_path"], "-purpose", "sslserver")
