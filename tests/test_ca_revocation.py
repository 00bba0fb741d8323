"""The fleet's revocation record and CRLs, across CA generations.

Runs the functions of pisec_ca_revoke, pisec_ca_crl and pisec_ca_issue
against CA directories laid out as a rollover leaves them (current,
.previous, .next, .retired/generation-N).
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from tests.conftest import (
    CA_PASSPHRASE,
    csr_pem,
    load_module_utils,
    load_plugin_module,
    make_csr,
    write_ca_dir,
)

revoke: Any = load_plugin_module("pisec_ca_revoke")
crl: Any = load_plugin_module("pisec_ca_crl")
issue: Any = load_plugin_module("pisec_ca_issue")
store: Any = load_module_utils("pisec_ca_store")
revocations: Any = load_module_utils("pisec_ca_record")
policy: Any = load_module_utils("pisec_ca_policy")

NOW = datetime.now(UTC)
CLIENT = ExtendedKeyUsageOID.CLIENT_AUTH


def issue_to(ca_dir: Path, name: str) -> dict[str, Any]:
    """Issue a device certificate through the module, as site.yml would."""
    key = ec.generate_private_key(ec.SECP256R1())
    return issue.issue(  # type: ignore[no-any-return]
        {
            "dir": str(ca_dir),
            "passphrase": CA_PASSPHRASE,
            "host": name,
            "csr": csr_pem(make_csr(key, name, purposes=[CLIENT])),
            "common_name": name,
            "subject_alt_names": [],
            "extended_key_usage": "clientAuth",
            "key_type": "ecdsa",
            "key_curve": "secp256r1",
            "key_size": 3072,
            "min_rsa_key_size": 2048,
            "validity_days": 30,
            "max_validity_days": 825,
            "not_before": "-10m",
            "existing": "",
            "renew": False,
        },
        False,
    )


def renew_crls(ca_dir: Path, **overrides: Any) -> list[dict[str, Any]]:
    values = {
        "dir": str(ca_dir),
        "passphrase": CA_PASSPHRASE,
        "validity_days": 30,
        "renew_before_days": 10,
        "force": False,
    }
    values.update(overrides)
    return crl.renew_all(values, False)  # type: ignore[no-any-return]


def load_crl(path: Path) -> x509.CertificateRevocationList:
    return x509.load_pem_x509_crl(path.read_bytes())


def record(ca_dir: Path, cn: str = "", serial: str = "", reason: str = "unspecified") -> list[Any]:
    added = revoke.revoke(str(ca_dir), cn, serial, reason, NOW)
    if added:
        revocations.write_record(str(ca_dir), revocations.read_record(str(ca_dir)) + added)
    return added  # type: ignore[no-any-return]


def switch(ca_dir: Path) -> None:
    """What ca-rollover.yml -e phase=switch does to the directories."""
    shutil.move(ca_dir, f"{ca_dir}.previous")
    shutil.move(f"{ca_dir}.next", ca_dir)


@pytest.fixture
def ca_dir(tmp_path: Path) -> Path:
    write_ca_dir(tmp_path / "ca")
    return tmp_path / "ca"


def test_the_record_lives_beside_the_ca_and_names_the_issuer(ca_dir: Path) -> None:
    door = issue_to(ca_dir, "esp32-door")
    added = record(ca_dir, cn="esp32-door", reason="key_compromise")
    ca = x509.load_pem_x509_certificate((ca_dir / "ca.crt").read_bytes())
    assert [entry.as_dict() for entry in added] == [
        {
            "serial": door["serial"],
            "issuer": store.key_id(ca),
            "cn": "esp32-door",
            "subject": "esp32-door",
            "reason": "key_compromise",
            "revoked_at": store.asn1_time(NOW),
        }
    ]
    path = ca_dir.parent / "ca.revoked.yml"
    assert path.stat().st_mode & 0o777 == 0o600
    assert yaml.safe_load(path.read_text())[0]["serial"] == door["serial"]
    assert not (ca_dir / "revoked.yml").exists()
    # Revoking again adds nothing and keeps the first time.
    assert record(ca_dir, cn="esp32-door") == []


def test_bad_revocations_name_what_is_wrong(ca_dir: Path) -> None:
    issue_to(ca_dir, "esp32-door")
    with pytest.raises(ValueError, match="give exactly one of -e cn=<identity> or -e serial="):
        revoke.revoke(str(ca_dir), "esp32-door", "01", "unspecified", NOW)
    with pytest.raises(ValueError, match="serial 'xyz' is not hex"):
        revoke.revoke(str(ca_dir), "", "xyz", "unspecified", NOW)
    with pytest.raises(ValueError, match="no certificate issued to cn=nobody by any CA"):
        revoke.revoke(str(ca_dir), "nobody", "", "unspecified", NOW)
    with pytest.raises(ValueError, match=r"cn 'door\\nuser x' is not an identity"):
        revoke.revoke(str(ca_dir), "door\nuser x", "", "unspecified", NOW)
    with pytest.raises(ValueError, match="reason 'lost' is not one of"):
        revoke.revoke(str(ca_dir), "esp32-door", "", "lost", NOW)


def test_a_revoked_identity_stays_revoked_through_a_rollover(ca_dir: Path) -> None:
    issue_to(ca_dir, "esp32-door")
    record(ca_dir, cn="esp32-door")
    write_ca_dir(Path(f"{ca_dir}.next"), name="pisec fleet CA G2")
    switch(ca_dir)
    with pytest.raises(policy.RequestRefusedError) as caught:
        issue_to(ca_dir, "esp32-door")
    assert caught.value.fields == ["identity"]
    assert list((ca_dir / "issued").iterdir()) == []
    # Retired too: the old CA's directory moves away, the record stays.
    retired = Path(f"{ca_dir}.retired")
    retired.mkdir()
    shutil.move(f"{ca_dir}.previous", retired / "generation-1")
    with pytest.raises(policy.RequestRefusedError):
        issue_to(ca_dir, "esp32-door")


def test_an_old_ca_certificate_can_be_revoked_between_switch_and_retire(ca_dir: Path) -> None:
    old_door = issue_to(ca_dir, "esp32-door")
    write_ca_dir(Path(f"{ca_dir}.next"), name="pisec fleet CA G2")
    switch(ca_dir)
    new_door = issue_to(ca_dir, "esp32-door")
    renew_crls(ca_dir)

    # By serial: only the outgoing CA's CRL lists it.
    added = record(ca_dir, serial=old_door["serial"])
    previous = x509.load_pem_x509_certificate(Path(f"{ca_dir}.previous/ca.crt").read_bytes())
    assert [(entry.serial, entry.issuer) for entry in added] == [
        (old_door["serial"], store.key_id(previous))
    ]
    results = renew_crls(ca_dir)
    assert [(result["suffix"], result["changed"]) for result in results] == [
        (".previous", True),
        ("", False),
    ]
    old_crl = load_crl(Path(f"{ca_dir}.previous/ca.crl"))
    assert [serial.serial_number for serial in old_crl] == [int(old_door["serial"], 16)]
    assert old_crl.is_signature_valid(previous.public_key())  # type: ignore[arg-type]
    assert list(load_crl(ca_dir / "ca.crl")) == []

    # By identity: the certificates of both CAs, each in its own CA's CRL.
    added = record(ca_dir, cn="esp32-door")
    assert [entry.serial for entry in added] == [new_door["serial"]]
    renew_crls(ca_dir)
    assert [serial.serial_number for serial in load_crl(ca_dir / "ca.crl")] == [
        int(new_door["serial"], 16)
    ]


def test_crls_are_kept_renewed_when_due_and_numbered(ca_dir: Path) -> None:
    first = renew_crls(ca_dir)
    assert first == [
        {
            "suffix": "",
            "path": str(ca_dir / "ca.crl"),
            "entries": 0,
            "changed": True,
            "why": "missing",
        }
    ]
    issued = load_crl(ca_dir / "ca.crl")
    assert issued.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 1
    assert issued.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier)
    assert renew_crls(ca_dir)[0]["changed"] is False
    assert (ca_dir / "ca.crl").read_bytes() == issued.public_bytes(serialization.Encoding.PEM)
    due = renew_crls(ca_dir, validity_days=40, renew_before_days=35)
    assert due[0]["why"] == "due"
    assert (
        load_crl(ca_dir / "ca.crl")
        .extensions.get_extension_for_class(x509.CRLNumber)
        .value.crl_number
        == 2
    )
    assert renew_crls(ca_dir, force=True)[0]["why"] == "forced"


def test_a_crl_signed_by_another_key_is_replaced(ca_dir: Path, tmp_path: Path) -> None:
    renew_crls(ca_dir)
    other = write_ca_dir(tmp_path / "other")
    renew_crls(tmp_path / "other")
    shutil.copy(tmp_path / "other" / "ca.crl", ca_dir / "ca.crl")
    assert (
        other.certificate.subject
        == x509.load_pem_x509_certificate((ca_dir / "ca.crt").read_bytes()).subject
    )
    assert renew_crls(ca_dir)[0]["why"] == "not signed by this CA"


def test_an_earlier_versions_record_is_merged_in(ca_dir: Path) -> None:
    door = issue_to(ca_dir, "esp32-door")
    (ca_dir / "revoked.yml").write_text(
        "# Written by playbooks/revoke.yml: the certificates this CA has revoked.\n"
        f"- serial: {door['serial']}\n  cn: esp32-door\n  reason: unspecified\n"
        "  revoked_at: '20260101000000Z'\n"
    )
    ca = x509.load_pem_x509_certificate((ca_dir / "ca.crt").read_bytes())
    entries = revocations.read_record(str(ca_dir))
    assert [(entry.serial, entry.issuer, entry.cn) for entry in entries] == [
        (door["serial"], store.key_id(ca), "esp32-door")
    ]
    assert revocations.revoked_identities(entries) == ["esp32-door"]
    renew_crls(ca_dir)
    assert [serial.serial_number for serial in load_crl(ca_dir / "ca.crl")] == [
        int(door["serial"], 16)
    ]


@pytest.mark.parametrize(
    ("text", "wanted"),
    [
        (
            "- serial: zz\n  revoked_at: '20260101000000Z'\n  issuer: AA\n",
            "entry 1: serial 'zz' is not hex",
        ),
        (
            "- serial: '01'\n  revoked_at: yesterday\n  issuer: AA\n",
            "revoked_at 'yesterday' is not",
        ),
        ("- serial: '01'\n  revoked_at: '20260101000000Z'\n", "entry 1: names no issuer"),
        (
            "- serial: '01'\n  revoked_at: '20260101000000Z'\n  issuer: AA\n"
            "  readmitted: yes please\n",
            "readmitted must be true or false",
        ),
        ("serial: 01\n", "a revocation record is a list of entries"),
        ("- [\n", "not YAML"),
    ],
    ids=["serial", "time", "issuer", "readmitted", "not-a-list", "not-yaml"],
)
def test_a_damaged_record_is_an_error_naming_the_file(ca_dir: Path, text: str, wanted: str) -> None:
    (ca_dir.parent / "ca.revoked.yml").write_text(text)
    with pytest.raises(store.StoreError) as caught:
        revocations.read_record(str(ca_dir))
    assert str(caught.value).startswith(f"{ca_dir.parent / 'ca.revoked.yml'}: ")
    assert wanted in str(caught.value)
