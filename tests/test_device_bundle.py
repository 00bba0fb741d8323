"""Bundles for devices Ansible cannot reach: made, kept and renewed on the CA host.

Runs pisec_ca_device_bundle's own function against a CA directory laid out
as pisec_ca lays it out.
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.conftest import CA_PASSPHRASE, load_module_utils, load_plugin_module, write_ca_dir

bundles: Any = load_plugin_module("pisec_ca_device_bundle")
store: Any = load_module_utils("pisec_ca_store")


def run(ca_dir: Path, check_mode: bool = False, **overrides: Any) -> list[dict[str, Any]]:
    values: dict[str, Any] = {
        "dir": str(ca_dir),
        "passphrase": CA_PASSPHRASE,
        "bundle_dir": str(ca_dir.parent / "devices"),
        "devices": ["esp32-door"],
        "key_type": "ecdsa",
        "validity_days": 30,
        "max_validity_days": 825,
        "not_before": "-10m",
        "renew_fraction_left": 0.3333,
        "renewal_jitter": 0.0,
        "force": False,
    }
    values.update(overrides)
    return bundles.run(values, check_mode)  # type: ignore[no-any-return]


def files(ca_dir: Path, name: str = "esp32-door") -> dict[str, bytes]:
    directory = ca_dir.parent / "devices" / name
    return {path.name: path.read_bytes() for path in sorted(directory.iterdir())}


def cert(ca_dir: Path, name: str = "esp32-door") -> x509.Certificate:
    return x509.load_pem_x509_certificate(files(ca_dir, name)[f"{name}.crt"])


@pytest.fixture
def ca_dir(tmp_path: Path) -> Path:
    write_ca_dir(tmp_path / "ca")
    return tmp_path / "ca"


def test_a_bundle_is_made_with_exact_modes_and_a_client_certificate(ca_dir: Path) -> None:
    [result] = run(ca_dir)
    assert result["action"] == "issued" and result["changed"]
    directory = ca_dir.parent / "devices" / "esp32-door"
    assert directory.stat().st_mode & 0o777 == 0o700
    assert (directory / "esp32-door.key").stat().st_mode & 0o777 == 0o600
    assert sorted(files(ca_dir)) == ["ca.crt", "esp32-door.crt", "esp32-door.key"]
    certificate = cert(ca_dir)
    assert certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "esp32-door"
    assert list(certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.CLIENT_AUTH
    ]
    with pytest.raises(x509.ExtensionNotFound):
        certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    key = serialization.load_pem_private_key(files(ca_dir)["esp32-door.key"], password=None)
    assert key.public_key() == certificate.public_key()
    assert files(ca_dir)["ca.crt"] == (ca_dir / "ca.crt").read_bytes()
    assert (ca_dir / "issued" / f"{result['serial']}.pem").exists()


def test_a_second_run_keeps_everything(ca_dir: Path) -> None:
    run(ca_dir)
    before = files(ca_dir)
    [result] = run(ca_dir)
    assert result["action"] == "kept" and not result["changed"]
    assert files(ca_dir) == before


@pytest.mark.parametrize(
    "overrides",
    [{"force": True}, {"renew_fraction_left": 0.9999}],
    ids=["forced", "due"],
)
def test_a_due_bundle_is_renewed_with_a_new_key(ca_dir: Path, overrides: dict[str, Any]) -> None:
    run(ca_dir)
    before = files(ca_dir)
    [result] = run(ca_dir, **overrides)
    assert result["action"] == "renewed"
    after = files(ca_dir)
    assert after["esp32-door.key"] != before["esp32-door.key"]
    assert after["esp32-door.crt"] != before["esp32-door.crt"]


def test_an_expired_bundle_is_renewed(ca_dir: Path) -> None:
    """A certificate this CA issued and recorded, but expired."""
    run(ca_dir)
    ca = x509.load_pem_x509_certificate((ca_dir / "ca.crt").read_bytes())
    ca_key: Any = serialization.load_pem_private_key(
        (ca_dir / "ca.key").read_bytes(), password=CA_PASSPHRASE.encode()
    )
    key: Any = serialization.load_pem_private_key(files(ca_dir)["esp32-door.key"], password=None)
    current = cert(ca_dir)
    now = datetime.now(UTC)
    builder = x509.CertificateBuilder(
        issuer_name=ca.subject,
        subject_name=current.subject,
        public_key=key.public_key(),
        serial_number=x509.random_serial_number(),
        not_valid_before=now - timedelta(days=40),
        not_valid_after=now - timedelta(days=1),
        extensions=list(current.extensions),
    )
    expired = builder.sign(ca_key, hashes.SHA256())
    store.record_issued(store.signing_generation(str(ca_dir)), expired)
    path = ca_dir.parent / "devices" / "esp32-door" / "esp32-door.crt"
    path.write_bytes(expired.public_bytes(serialization.Encoding.PEM))
    [result] = run(ca_dir)
    assert result["action"] == "renewed"
    assert cert(ca_dir).not_valid_after_utc > now + timedelta(days=29)


def test_a_half_done_renewal_is_healed(ca_dir: Path) -> None:
    """A run killed between writing the new key and the new certificate."""
    run(ca_dir)
    path = ca_dir.parent / "devices" / "esp32-door" / "esp32-door.key"
    path.write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    [result] = run(ca_dir)
    assert result["action"] == "reissued"
    key: Any = serialization.load_pem_private_key(path.read_bytes(), password=None)
    assert key.public_key() == cert(ca_dir).public_key()


def test_modes_and_leftovers_are_put_right(ca_dir: Path) -> None:
    run(ca_dir)
    directory = ca_dir.parent / "devices" / "esp32-door"
    (directory / "esp32-door.key").chmod(0o644)
    (directory / "esp32-door.csr").write_text("an earlier version's request\n")
    [result] = run(ca_dir)
    assert result["action"] == "kept" and result["changed"]
    assert (directory / "esp32-door.key").stat().st_mode & 0o777 == 0o600
    assert not (directory / "esp32-door.csr").exists()


def test_a_revoked_device_is_left_alone(ca_dir: Path) -> None:
    [first] = run(ca_dir)
    before = files(ca_dir)
    ca = x509.load_pem_x509_certificate((ca_dir / "ca.crt").read_bytes())
    (ca_dir.parent / "ca.revoked.yml").write_text(
        f"- serial: '{first['serial']}'\n  issuer: '{store.key_id(ca)}'\n"
        "  cn: esp32-door\n  reason: key_compromise\n  revoked_at: '20260101000000Z'\n"
    )
    [result] = run(ca_dir, force=True)
    assert result["action"] == "revoked" and not result["changed"]
    assert files(ca_dir) == before


def test_after_a_rollover_switch_the_new_ca_renews_the_bundle(ca_dir: Path) -> None:
    run(ca_dir)
    old = cert(ca_dir)
    write_ca_dir(Path(f"{ca_dir}.next"), name="pisec fleet CA G2")
    shutil.move(ca_dir, f"{ca_dir}.previous")
    shutil.move(f"{ca_dir}.next", ca_dir)
    [result] = run(ca_dir)
    assert result["action"] == "renewed"
    new = cert(ca_dir)
    assert new.issuer != old.issuer
    bundle = files(ca_dir)["ca.crt"]
    assert (
        bundle == Path(f"{ca_dir}.previous/ca.crt").read_bytes() + (ca_dir / "ca.crt").read_bytes()
    )


def test_a_changed_key_type_gives_a_new_key(ca_dir: Path) -> None:
    run(ca_dir)
    [result] = run(ca_dir, key_type="rsa")
    assert result["action"] == "renewed"
    assert isinstance(cert(ca_dir).public_key(), rsa.RSAPublicKey)


def test_a_dry_run_writes_nothing(ca_dir: Path) -> None:
    [result] = run(ca_dir, check_mode=True)
    assert result["action"] == "issued" and result["changed"]
    assert not (ca_dir.parent / "devices").exists()
    assert list((ca_dir / "issued").iterdir()) == []


def test_a_bad_device_name_is_an_error(ca_dir: Path) -> None:
    with pytest.raises(ValueError, match=r"common name 'door\\n' is neither"):
        run(ca_dir, devices=["door\n"])
