#!/usr/bin/python
"""Record the revocation of an identity or of one certificate.

Runs on the CA host. Looks through what every CA the fleet trusts issued
(the current CA and, during a rollover, the previous and the next), so that
a certificate of the outgoing CA can be revoked between `switch` and
`retire`. Entries go to the fleet's revocation record beside the CA
directories, each naming the CA that issued the certificate; the record
survives a rollover, so a revoked identity stays revoked under the new CA.
Revoking again changes nothing (existing entries keep their time).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible.module_utils.pisec_ca_policy import valid_common_name
from ansible.module_utils.pisec_ca_record import (
    HAS_YAML,
    REASONS,
    Revocation,
    read_record,
    write_record,
)
from ansible.module_utils.pisec_ca_store import (
    StoreError,
    asn1_time,
    issued_certificates,
    normal_serial,
    serial_hex,
    trusted_generations,
)
from cryptography.x509.oid import NameOID

DOCUMENTATION = r"""
module: pisec_ca_revoke
short_description: Record a revocation in the fleet CA's revocation record
options:
  dir: {description: The CA directory (pisec_ca_dir)., type: path, required: true}
  cn: {description: Identity whose certificates are all revoked., type: str}
  serial: {description: Hex serial of the one certificate to revoke., type: str}
  reason: {description: CRL reason., type: str}
supports_check_mode: true
"""

RETURN = r"""
revoked:
  description: The entries added (serial, issuer, cn, subject, reason, revoked_at).
  type: list
"""


def _common_name(certificate: Any) -> str:
    names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else ""


def revoke(ca_dir: str, cn: str, serial: str, reason: str, now: datetime) -> list[Revocation]:
    """The entries to add for this revocation (none when all are recorded already).
    Raises ValueError when the request is wrong, StoreError for a bad file."""
    if bool(cn) == bool(serial):
        raise ValueError(
            "give exactly one of -e cn=<identity> or -e serial=<hex serial, as `pisec inspect` "
            f"or `openssl x509 -serial` print it> (got cn={cn!r}, serial={serial!r})"
        )
    if cn and not valid_common_name(cn):
        raise ValueError(f"cn {cn!r} is not an identity pisec issues certificates to")
    wanted_serial = normal_serial(serial) if serial else ""
    if serial and not wanted_serial:
        raise ValueError(f"serial {serial!r} is not hex (as `openssl x509 -serial` prints it)")
    if reason not in REASONS:
        raise ValueError(f"reason {reason!r} is not one of {', '.join(REASONS)}")
    generations = trusted_generations(ca_dir)
    if not generations:
        raise StoreError(f"{ca_dir}/ca.crt: no CA certificate; run playbooks/site.yml first")
    found: list[Revocation] = []
    for generation in generations:
        for _, certificate in issued_certificates(generation):
            subject_cn = _common_name(certificate)
            number = serial_hex(certificate.serial_number)
            if (cn and subject_cn == cn) or (wanted_serial and number == wanted_serial):
                found.append(
                    Revocation(
                        serial=number,
                        issuer=generation.key_id,
                        cn=cn,
                        subject=subject_cn,
                        reason=reason,
                        revoked_at=asn1_time(now),
                    )
                )
    if not found:
        what = f"cn={cn}" if cn else f"serial={serial}"
        places = ", ".join(f"{generation.issued_dir}" for generation in generations)
        raise ValueError(f"no certificate issued to {what} by any CA the fleet trusts ({places})")
    known = {entry.key for entry in read_record(ca_dir)}
    return [entry for entry in found if entry.key not in known]


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "dir": {"type": "path", "required": True},
            "cn": {"type": "str", "default": ""},
            "serial": {"type": "str", "default": ""},
            "reason": {"type": "str", "default": "unspecified"},
        },
        supports_check_mode=True,
    )
    if not HAS_YAML:
        module.fail_json(msg=missing_required_lib("PyYAML (python3-yaml)"))
    params = module.params
    try:
        added = revoke(
            params["dir"], params["cn"], params["serial"], params["reason"], datetime.now(UTC)
        )
        if added and not module.check_mode:
            write_record(params["dir"], read_record(params["dir"]) + added)
    except (StoreError, ValueError, OSError) as exc:
        module.fail_json(msg=f"revoke: {exc}")
    module.exit_json(changed=bool(added), revoked=[entry.as_dict() for entry in added])


if __name__ == "__main__":
    main()
