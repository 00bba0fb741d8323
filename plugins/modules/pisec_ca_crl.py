#!/usr/bin/python
"""Issue or renew the CRL of every CA the fleet trusts, in one run.

Runs on the CA host. Each CA's CRL lists the serials the revocation record
attributes to that CA (by key identifier), and nothing else. A CRL is
reissued when it is missing, is not this CA's, lists other entries than the
record, has fewer than `renew_before_days` left, or `force` is set; it is
kept otherwise (changed=false). A broker whose CRL passed its nextUpdate
refuses every client certificate, so renewing early matters.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from typing import Any

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible.module_utils.pisec_ca_record import (
    HAS_YAML,
    Revocation,
    read_record,
)
from ansible.module_utils.pisec_ca_store import (
    Generation,
    StoreError,
    authority_key_identifier,
    crl_next_update,
    crl_signed_by,
    digest_for,
    load_ca_key,
    read_text,
    revocation_date,
    serial_hex,
    trusted_generations,
    write_atomically,
)
from cryptography import x509
from cryptography.hazmat.primitives import serialization

DOCUMENTATION = r"""
module: pisec_ca_crl
short_description: Keep the CRL of every trusted fleet CA current
options:
  dir: {description: The CA directory (pisec_ca_dir)., type: path, required: true}
  passphrase: {description: Passphrase of the CA keys., type: str, no_log: true}
  validity_days: {description: nextUpdate of a new CRL, in days., type: int, required: true}
  renew_before_days: {description: Renew when fewer days are left., type: int, required: true}
  force: {description: Reissue every CRL now., type: bool}
supports_check_mode: true
"""

RETURN = r"""
crls:
  description: Per trusted CA, oldest first, its suffix, path, entries, whether it changed and why.
  type: list
"""

BACKDATE = timedelta(minutes=10)


def _entries(crl: x509.CertificateRevocationList) -> set[tuple[str, str, str]]:
    found = set()
    for entry in crl:
        try:
            reason = entry.extensions.get_extension_for_class(x509.CRLReason).value.reason.name
        except x509.ExtensionNotFound:
            reason = "unspecified"
        found.add(
            (
                serial_hex(entry.serial_number),
                revocation_date(entry).strftime("%Y%m%d%H%M%SZ"),
                reason,
            )
        )
    return found


def _wanted(entries: list[Revocation]) -> set[tuple[str, str, str]]:
    return {(entry.serial, entry.revoked_at, entry.reason) for entry in entries}


def reason_for_reissue(
    generation: Generation,
    entries: list[Revocation],
    now: datetime,
    renew_before: timedelta,
    force: bool,
) -> tuple[str | None, int]:
    """Why this CA's CRL must be issued again (None: keep it), and the CRL
    number the next one carries."""
    if not os.path.isfile(generation.crl_path):
        return "missing", 1
    try:
        crl = x509.load_pem_x509_crl(read_text(generation.crl_path, "a PEM CRL").encode("ascii"))
    except ValueError:
        return "unreadable", 1
    try:
        number = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number + 1
    except x509.ExtensionNotFound:
        number = 1
    if not crl_signed_by(crl, generation.certificate):
        return "not signed by this CA", number
    if _entries(crl) != _wanted(entries):
        return "revocations changed", number
    next_update = crl_next_update(crl)
    if next_update is None or next_update - now < renew_before:
        return "due", number
    if force:
        return "forced", number
    return None, number


def build_crl(
    generation: Generation,
    key: Any,
    entries: list[Revocation],
    now: datetime,
    days: int,
    number: int,
) -> x509.CertificateRevocationList:
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(generation.certificate.subject)
        .last_update(now - BACKDATE)
        .next_update(now + timedelta(days=days))
        .add_extension(x509.CRLNumber(number), critical=False)
        .add_extension(authority_key_identifier(generation.certificate), critical=False)
    )
    for entry in sorted(entries, key=lambda item: item.serial):
        revoked = (
            x509.RevokedCertificateBuilder()
            .serial_number(int(entry.serial, 16))
            .revocation_date(entry.revoked_at_time)
        )
        if entry.reason != "unspecified":
            revoked = revoked.add_extension(
                x509.CRLReason(x509.ReasonFlags[entry.reason]), critical=False
            )
        builder = builder.add_revoked_certificate(revoked.build())
    return builder.sign(key, digest_for(generation.certificate))


def renew_all(params: dict[str, Any], check_mode: bool) -> list[dict[str, Any]]:
    if not 2 <= params["validity_days"] <= 365:
        raise ValueError(f"pisec_ca_crl_validity_days {params['validity_days']} is outside 2..365")
    if not 1 <= params["renew_before_days"] < params["validity_days"]:
        raise ValueError(
            f"pisec_ca_crl_renew_before_days {params['renew_before_days']} is outside "
            f"1..{params['validity_days'] - 1}"
        )
    now = datetime.now(UTC)
    record = read_record(params["dir"])
    results = []
    for generation in trusted_generations(params["dir"]):
        entries = [entry for entry in record if entry.issuer == generation.key_id]
        why, number = reason_for_reissue(
            generation,
            entries,
            now,
            timedelta(days=params["renew_before_days"]),
            params["force"],
        )
        if why is not None and not check_mode:
            crl = build_crl(
                generation,
                load_ca_key(generation, params["passphrase"]),
                entries,
                now,
                params["validity_days"],
                number,
            )
            write_atomically(
                generation.crl_path, crl.public_bytes(serialization.Encoding.PEM), 0o644
            )
        results.append(
            {
                "suffix": generation.suffix,
                "path": generation.crl_path,
                "entries": len(entries),
                "changed": why is not None,
                "why": why or "",
            }
        )
    return results


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "dir": {"type": "path", "required": True},
            "passphrase": {"type": "str", "no_log": True},
            "validity_days": {"type": "int", "required": True},
            "renew_before_days": {"type": "int", "required": True},
            "force": {"type": "bool", "default": False},
        },
        supports_check_mode=True,
    )
    if not HAS_YAML:
        module.fail_json(msg=missing_required_lib("PyYAML (python3-yaml)"))
    try:
        crls = renew_all(module.params, module.check_mode)
    except (StoreError, ValueError, OSError) as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(changed=any(crl["changed"] for crl in crls), crls=crls)


if __name__ == "__main__":
    main()
