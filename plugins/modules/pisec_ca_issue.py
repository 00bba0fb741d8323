#!/usr/bin/python
"""Issue a host's certificate with the contents the controller decided.

Runs on the CA host. The CSR comes from the host and is not trusted: its
signature must verify (proof of possession), its public key must be of the
kind the inventory asks for, and it may ask for nothing beyond the profile
(subject, subject alternative names, key usage, extended key usage). A CSR
that does is refused, naming the host and the field, and nothing is signed
or recorded. What is signed is built from the profile and the CSR's public
key only. A revoked identity is refused too.

The host's current certificate (also reported by the host) is kept when it
is exactly what this CA issued and recorded for this key and profile, and is
not due; otherwise a new one is issued and recorded in issued/<serial>.pem.
One module run per certificate: check, sign, record.

Without a CSR the module only decides whether the current certificate is
kept, for the public key the host reports: a host's rerun needs no new
request unless the CA would not keep what it has. It never signs then; a
host that misreports its key only keeps a certificate its key cannot use.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible.module_utils.pisec_ca_policy import (
    Profile,
    RequestRefusedError,
    build_leaf,
    check_request,
    kept_certificate,
    reported_public_key,
    validity,
)
from ansible.module_utils.pisec_ca_record import (
    HAS_YAML,
    read_record,
    revoked_identities,
)
from ansible.module_utils.pisec_ca_store import (
    StoreError,
    authority_key_identifier,
    digest_for,
    load_ca_key,
    not_after,
    record_issued,
    serial_hex,
    signing_generation,
)
from cryptography import x509
from cryptography.hazmat.primitives import serialization

DOCUMENTATION = r"""
module: pisec_ca_issue
short_description: Issue a host certificate whose contents the controller decides
description:
  - Checks the CSR's proof of possession, its public key and every name and usage it asks
    for against the profile; refuses it, naming the field, when it asks for more.
  - Signs a certificate built from the profile and the CSR's public key only, with the CA
    that signs now (C(dir)), and records it in C(dir)/issued/<serial>.pem.
  - Keeps C(existing) when this CA issued and recorded it for this key and profile, it is
    valid now and C(renew) is false.
options:
  dir: {description: The CA directory (pisec_ca_dir)., type: path, required: true}
  passphrase: {description: Passphrase of the CA key., type: str, no_log: true}
  host: {description: Who asked (for messages)., type: str, required: true}
  csr:
    description: >-
      PEM of the host's certificate signing request. Empty: only decide whether C(existing)
      is kept for C(public_key); nothing is signed.
    type: str
  public_key: {description: PEM of the public key the host reports (without C(csr))., type: str}
  common_name: {description: Subject CN the controller decided., type: str, required: true}
  subject_alt_names:
    description: DNS/IP entries the controller decided.
    type: list
    elements: str
  extended_key_usage: {description: serverAuth or clientAuth., type: str, required: true}
  key_type: {description: ecdsa or rsa., type: str, required: true}
  key_curve: {description: Curve of an ECDSA key., type: str}
  key_size: {description: Size of an RSA key., type: int}
  min_rsa_key_size: {description: Smallest RSA key accepted., type: int}
  validity_days: {description: Lifetime of a new certificate., type: int, required: true}
  max_validity_days: {description: Longest lifetime the CA signs., type: int, required: true}
  not_before: {description: Backdating of a new certificate, such as -10m., type: str}
  existing: {description: PEM of the host's current certificate, or empty., type: str}
  renew: {description: Issue a new certificate even if the current one could be kept., type: bool}
supports_check_mode: true
"""

RETURN = r"""
certificate:
  description: PEM of the kept or new certificate (empty in check mode before issuing).
  type: str
serial: {description: Its serial in hex., type: str}
kept: {description: Whether the existing certificate was kept., type: bool}
refused: {description: The CSR fields that were refused (only on failure)., type: list}
"""


def issue(params: dict[str, Any], check_mode: bool) -> dict[str, Any]:
    """The module's work; raises RequestRefusedError, StoreError or ValueError."""
    if not 1 <= params["validity_days"] <= params["max_validity_days"]:
        raise ValueError(
            f"a certificate lifetime of {params['validity_days']} days is outside "
            f"1..{params['max_validity_days']} (pisec_ca_max_leaf_validity_days)"
        )
    profile = Profile.checked(
        params["common_name"],
        params["subject_alt_names"] or [],
        params["extended_key_usage"],
        params["key_type"],
        params["key_curve"] or "secp256r1",
        params["key_size"] or 3072,
    )
    csr = None
    if (params.get("csr") or "").strip():
        try:
            csr = x509.load_pem_x509_csr(params["csr"].strip().encode("ascii"))
        except (ValueError, UnicodeEncodeError):
            raise RequestRefusedError(
                [("request", "is not a PEM certificate signing request")]
            ) from None
        check_request(csr, profile, params["min_rsa_key_size"])
    generation = signing_generation(params["dir"])
    entries = read_record(params["dir"])
    if profile.common_name in revoked_identities(entries):
        raise RequestRefusedError(
            [
                (
                    "identity",
                    f"{profile.common_name} was revoked (playbooks/revoke.yml); re-admit it "
                    "with readmitted: true on its entries in the revocation record first",
                )
            ]
        )
    public_key = csr.public_key() if csr is not None else reported_public_key(params["public_key"])
    revoked_serials = {entry.serial for entry in entries if entry.issuer == generation.key_id}
    kept = (
        None
        if params.get("renew")
        else kept_certificate(
            params.get("existing"),
            generation,
            profile,
            public_key,
            revoked_serials,
            datetime.now(UTC),
        )
    )
    if kept is not None:
        return {
            "changed": False,
            "kept": True,
            "certificate": kept.public_bytes(serialization.Encoding.PEM).decode("ascii"),
            "serial": serial_hex(kept.serial_number),
        }
    if check_mode or csr is None:
        return {"changed": csr is not None, "kept": False, "certificate": "", "serial": ""}
    ca_key = load_ca_key(generation, params["passphrase"])
    now = datetime.now(UTC)
    start, end = validity(
        generation.certificate,
        now,
        params["not_before"],
        params["validity_days"],
        not_after(generation.certificate),
    )
    certificate = build_leaf(
        generation.certificate,
        ca_key,
        public_key,
        profile,
        start,
        end,
        digest_for(generation.certificate),
        authority_key_identifier(generation.certificate),
    )
    record_issued(generation, certificate)
    return {
        "changed": True,
        "kept": False,
        "certificate": certificate.public_bytes(serialization.Encoding.PEM).decode("ascii"),
        "serial": serial_hex(certificate.serial_number),
    }


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "dir": {"type": "path", "required": True},
            "passphrase": {"type": "str", "no_log": True},
            "host": {"type": "str", "required": True},
            "csr": {"type": "str", "default": ""},
            "public_key": {"type": "str", "default": ""},
            "common_name": {"type": "str", "required": True},
            "subject_alt_names": {"type": "list", "elements": "str", "default": []},
            "extended_key_usage": {
                "type": "str",
                "required": True,
                "choices": ["serverAuth", "clientAuth"],
            },
            "key_type": {"type": "str", "required": True, "choices": ["ecdsa", "rsa"]},
            "key_curve": {"type": "str", "default": "secp256r1"},
            "key_size": {"type": "int", "default": 3072},
            "min_rsa_key_size": {"type": "int", "default": 2048},
            "validity_days": {"type": "int", "required": True},
            "max_validity_days": {"type": "int", "required": True},
            "not_before": {"type": "str", "default": "-10m"},
            "existing": {"type": "str", "default": ""},
            "renew": {"type": "bool", "default": False},
        },
        supports_check_mode=True,
    )
    if not HAS_YAML:
        module.fail_json(msg=missing_required_lib("PyYAML (python3-yaml)"))
    host = module.params["host"]
    try:
        result = issue(module.params, module.check_mode)
    except RequestRefusedError as exc:
        module.fail_json(
            msg=f"{host}: the CA refuses the certificate signing request: {exc}. "
            "Nothing was signed or recorded.",
            refused=exc.fields,
        )
    except (StoreError, ValueError, OSError) as exc:
        module.fail_json(msg=f"{host}: {exc}")
    module.exit_json(**result)


if __name__ == "__main__":
    main()
