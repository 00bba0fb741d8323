"""The CA host's side of a CA rollover and of revocation, and the CA key's profile.

Runs playbooks/ca.yml and playbooks/ca-rollover.yml for real against
localhost, limited to the CA host: the inventory's Pis do not exist. The
Pis' side (trust bundles, restarts, renewals, clients connecting in every
phase) is proven by the Molecule scenario `rotation`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tests.conftest import PROJECT
from tests.test_preflight import ANSIBLE_PLAYBOOK, INVENTORY

PASSPHRASE = "a passphrase long enough"


def run(
    inventory: Path, playbook: str, extra_vars: dict[str, object] | None = None
) -> subprocess.CompletedProcess[str]:
    if not inventory.exists():
        inventory.mkdir()
        (inventory / "hosts.yml").write_text(INVENTORY)
    return subprocess.run(
        [
            str(ANSIBLE_PLAYBOOK),
            "-i",
            str(inventory),
            "--limit",
            "localhost",
            str(PROJECT / "playbooks" / playbook),
            "-e",
            json.dumps({"pisec_ca_passphrase": PASSPHRASE, **(extra_vars or {})}),
        ],
        cwd=PROJECT,
        env={
            **os.environ,
            "ANSIBLE_CONFIG": str(PROJECT / "ansible.cfg"),
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_FORCE_COLOR": "0",
        },
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def changed(result: subprocess.CompletedProcess[str]) -> int:
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    match = re.search(r"localhost\s+:\s+ok=\d+\s+changed=(\d+)", result.stdout)
    assert match, result.stdout
    return int(match.group(1))


def certificate(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def common_name(cert: x509.Certificate) -> str:
    return str(cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value)


@pytest.mark.parametrize(
    ("settings", "algorithm", "size"),
    [
        ({}, ec.SECP256R1, 256),
        ({"pisec_ca_key_type": "rsa", "pisec_ca_key_size": 2048}, rsa.RSAPublicKey, 2048),
        ({"pisec_ca_key_type": "rsa", "pisec_ca_key_size": 4096}, rsa.RSAPublicKey, 4096),
    ],
    ids=["ecdsa-p256-default", "rsa-2048", "rsa-4096"],
)
def test_ca_certificate_profile(
    tmp_path: Path, settings: dict[str, object], algorithm: type, size: int
) -> None:
    inventory = tmp_path / "inventory"
    changed(run(inventory, "ca.yml", settings))
    ca_dir = inventory / ".pisec/ca"
    ca = certificate(ca_dir / "ca.crt")
    key = ca.public_key()
    if algorithm is ec.SECP256R1:
        assert isinstance(key, ec.EllipticCurvePublicKey)
        assert isinstance(key.curve, ec.SECP256R1)
    else:
        assert isinstance(key, rsa.RSAPublicKey)
    assert key.key_size == size
    basic = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    assert basic.critical and basic.value.ca and basic.value.path_length == 0
    usage = ca.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical
    assert usage.value.key_cert_sign and usage.value.crl_sign
    assert not (usage.value.digital_signature or usage.value.key_encipherment)
    ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    assert ca.subject == ca.issuer
    assert common_name(ca) == "pisec fleet CA"
    # Encrypted at rest with PBES2 (PKCS#8), in a directory only root reads.
    assert (ca_dir / "ca.key").read_text().startswith("-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert (ca_dir / "ca.key").stat().st_mode & 0o777 == 0o600
    assert ca_dir.stat().st_mode & 0o777 == 0o700


def test_changed_key_settings_never_replace_the_ca(tmp_path: Path) -> None:
    inventory = tmp_path / "inventory"
    changed(run(inventory, "ca.yml"))
    ca_dir = inventory / ".pisec/ca"
    key, cert = (ca_dir / "ca.key").read_bytes(), (ca_dir / "ca.crt").read_bytes()
    assert changed(run(inventory, "ca.yml", {"pisec_ca_key_type": "rsa"})) == 0
    assert (ca_dir / "ca.key").read_bytes() == key
    assert (ca_dir / "ca.crt").read_bytes() == cert


def test_rollover_phases_on_the_ca_host(tmp_path: Path) -> None:
    inventory = tmp_path / "inventory"
    changed(run(inventory, "ca.yml"))
    ca_dir = inventory / ".pisec/ca"
    first = certificate(ca_dir / "ca.crt")

    refused = run(inventory, "ca-rollover.yml", {"phase": "switch"})
    assert refused.returncode != 0
    assert (
        "no next CA to switch to; run -e phase=introduce first" in refused.stdout + refused.stderr
    )

    # introduce: a second CA beside the first, of the next generation.
    assert changed(run(inventory, "ca-rollover.yml", {"phase": "introduce"})) > 0
    incoming = certificate(Path(f"{ca_dir}.next") / "ca.crt")
    assert common_name(incoming) == "pisec fleet CA G2"
    assert incoming.public_key() != first.public_key()
    crl = x509.load_pem_x509_crl(Path(f"{ca_dir}.next/ca.crl").read_bytes())
    assert crl.issuer == incoming.subject
    assert crl.is_signature_valid(incoming.public_key())  # type: ignore[arg-type]
    assert certificate(ca_dir / "ca.crt") == first
    assert changed(run(inventory, "ca-rollover.yml", {"phase": "introduce"})) == 0

    # switch, killed between its two renames: the next run completes it.
    shutil.move(ca_dir, f"{ca_dir}.previous")
    assert changed(run(inventory, "ca-rollover.yml", {"phase": "switch"})) > 0
    assert certificate(ca_dir / "ca.crt") == incoming
    assert certificate(Path(f"{ca_dir}.previous/ca.crt")) == first
    assert not Path(f"{ca_dir}.next").exists()
    assert changed(run(inventory, "ca-rollover.yml", {"phase": "switch"})) == 0

    # A new rollover waits until this one is retired.
    early = run(inventory, "ca-rollover.yml", {"phase": "introduce"})
    assert early.returncode != 0
    assert "finish it with -e phase=retire first" in early.stdout + early.stderr

    # The site play keeps the current CA and renews the outgoing CA's CRL too.
    assert changed(run(inventory, "ca.yml")) == 0

    # retire: the old CA is archived with its key, trusted no more.
    assert changed(run(inventory, "ca-rollover.yml", {"phase": "retire"})) > 0
    archive = Path(f"{ca_dir}.retired/generation-1")
    assert certificate(archive / "ca.crt") == first
    assert (archive / "ca.key").stat().st_mode & 0o777 == 0o600
    assert Path(f"{ca_dir}.retired").stat().st_mode & 0o777 == 0o700
    assert not Path(f"{ca_dir}.previous").exists()
    assert changed(run(inventory, "ca-rollover.yml", {"phase": "retire"})) == 0

    # The next rollover counts on: generation 3.
    changed(run(inventory, "ca-rollover.yml", {"phase": "introduce"}))
    assert common_name(certificate(Path(f"{ca_dir}.next") / "ca.crt")) == "pisec fleet CA G3"


def test_unknown_phase_is_refused_before_anything_changes(tmp_path: Path) -> None:
    inventory = tmp_path / "inventory"
    changed(run(inventory, "ca.yml"))
    result = run(inventory, "ca-rollover.yml", {"phase": "swap"})
    assert result.returncode != 0
    assert 'phase: give -e phase=introduce, -e phase=switch or -e phase=retire (got "swap")' in (
        result.stdout + result.stderr
    )
    assert not Path(f"{inventory}/.pisec/ca.next").exists()


def _issue(ca_dir: Path, common_name: str) -> x509.Certificate:
    """A leaf signed by the CA on disk and recorded in issued/, as the sign
    entry point records what it issues."""
    ca_key = serialization.load_pem_private_key(
        (ca_dir / "ca.key").read_bytes(), password=PASSPHRASE.encode()
    )
    ca = certificate(ca_dir / "ca.crt")
    key = ec.generate_private_key(ec.SECP256R1())
    now = ca.not_valid_before_utc
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(ca.not_valid_after_utc)
        .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    (ca_dir / "issued" / f"{leaf.serial_number:X}.pem").write_bytes(
        leaf.public_bytes(serialization.Encoding.PEM)
    )
    return leaf


def test_revoke_by_serial_and_bad_revocations(tmp_path: Path) -> None:
    inventory = tmp_path / "inventory"
    changed(run(inventory, "ca.yml"))
    ca_dir = inventory / ".pisec/ca"
    door = _issue(ca_dir, "esp32-door")
    gate = _issue(ca_dir, "esp32-gate")
    serial = f"{door.serial_number:X}"
    serial = serial if len(serial) % 2 == 0 else "0" + serial

    both = run(inventory, "revoke.yml", {"cn": "esp32-gate", "serial": serial})
    assert both.returncode != 0
    assert "give exactly one of -e cn=<identity> or -e serial=" in both.stdout + both.stderr
    unknown = run(inventory, "revoke.yml", {"cn": "nobody"})
    assert unknown.returncode != 0
    assert "no certificate issued to cn=nobody" in unknown.stdout + unknown.stderr
    assert list(x509.load_pem_x509_crl((ca_dir / "ca.crl").read_bytes())) == []

    # By serial, with colons as `openssl x509 -serial` users paste them.
    colons = ":".join(serial[i : i + 2] for i in range(0, len(serial), 2))
    assert changed(run(inventory, "revoke.yml", {"serial": colons, "reason": "key_compromise"}))
    crl = x509.load_pem_x509_crl((ca_dir / "ca.crl").read_bytes())
    assert [entry.serial_number for entry in crl] == [door.serial_number]
    entry = crl.get_revoked_certificate_by_serial_number(door.serial_number)
    assert entry is not None
    assert entry.extensions.get_extension_for_class(x509.CRLReason).value.reason == (
        x509.ReasonFlags.key_compromise
    )
    assert crl.get_revoked_certificate_by_serial_number(gate.serial_number) is None
    assert changed(run(inventory, "revoke.yml", {"serial": serial})) == 0
