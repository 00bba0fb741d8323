"""The CA play on the control node: CRL issue, idempotence and renewal.

Runs playbooks/ca.yml for real against localhost (the CA host); the
inventory's broker does not exist and is never contacted by this play.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509

from tests.test_preflight import run_playbook


def _crl(inventory: Path) -> x509.CertificateRevocationList:
    return x509.load_pem_x509_crl((inventory / ".pisec/ca/ca.crl").read_bytes())


def _changed(output: str) -> int:
    match = re.search(r"localhost\s+:\s+ok=\d+\s+changed=(\d+)", output)
    assert match, output
    return int(match.group(1))


def test_crl_is_issued_kept_and_renewed_before_next_update(tmp_path: Path) -> None:
    first = run_playbook(tmp_path, "ca.yml", {})
    assert first.returncode == 0, first.stdout + first.stderr
    inventory = tmp_path / "inventory"
    crl = _crl(inventory)
    ca = x509.load_pem_x509_certificate((inventory / ".pisec/ca/ca.crt").read_bytes())
    assert crl.is_signature_valid(ca.public_key())  # type: ignore[arg-type]
    assert crl.issuer == ca.subject
    assert len(list(crl)) == 0
    assert crl.next_update_utc is not None
    assert abs(crl.next_update_utc - (datetime.now(UTC) + timedelta(days=30))) < timedelta(hours=1)

    second = run_playbook(tmp_path, "ca.yml", {}, fresh_inventory=False)
    assert second.returncode == 0
    assert _changed(second.stdout) == 0, second.stdout
    assert _crl(inventory).next_update_utc == crl.next_update_utc

    # Fewer days left than the renewal window: the next run renews the CRL.
    third = run_playbook(
        tmp_path,
        "ca.yml",
        {"pisec_ca_crl_validity_days": 40, "pisec_ca_crl_renew_before_days": 35},
        fresh_inventory=False,
    )
    assert third.returncode == 0, third.stdout
    assert _changed(third.stdout) == 1, third.stdout
    renewed = _crl(inventory).next_update_utc
    assert renewed is not None
    assert abs(renewed - (datetime.now(UTC) + timedelta(days=40))) < timedelta(hours=1)
