#!/usr/bin/python
"""Decide, for many hosts in one run, which served certificates the CA keeps.

Runs on the CA host, once for every host of a play whose certificate is not
due. Each request carries what the controller decided (the profile) and what
the host reported (the public key of its served key and its served
certificate). A certificate is kept exactly when pisec_ca_issue would keep
it: valid now, not revoked, and what the CA that signs now issued and
recorded for that key and profile (pisec_ca_policy.kept_certificate, the
same code). Nothing is ever signed or written: a host whose certificate is
not kept makes a request and goes to pisec_ca_issue.

The CA's certificate, its issued records and its revocation record are read
once for all requests, which is what makes a fleet's rerun one trip to the
CA instead of one per host.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible.module_utils.pisec_ca_policy import (
    Profile,
    kept_certificate,
    reported_public_key,
)
from ansible.module_utils.pisec_ca_record import (
    HAS_YAML,
    read_record,
    revoked_identities,
)
from ansible.module_utils.pisec_ca_store import (
    StoreError,
    serial_hex,
    signing_generation,
)

DOCUMENTATION = r"""
module: pisec_ca_keep
short_description: Decide which served host certificates the fleet CA keeps, for many hosts at once
description:
  - Reads the CA that signs now and its records once, and for each request decides whether
    the host's served certificate is kept for the public key the host reports and the
    profile the controller decided. Signs and writes nothing.
  - A request that is malformed, names a revoked identity, or whose profile the CA would not
    issue is simply not kept; the host then makes a request and pisec_ca_issue decides.
options:
  dir: {description: The CA directory (pisec_ca_dir)., type: path, required: true}
  requests:
    description: One entry per served certificate.
    type: list
    elements: dict
    required: true
    suboptions:
      id: {description: What the answer names (host and certificate)., type: str, required: true}
      common_name: {description: Subject CN the controller decided., type: str, required: true}
      subject_alt_names: {description: DNS/IP entries decided., type: list, elements: str}
      extended_key_usage: {description: serverAuth or clientAuth., type: str, required: true}
      key_type: {description: ecdsa or rsa., type: str, required: true}
      key_curve: {description: Curve of an ECDSA key., type: str}
      key_size: {description: Size of an RSA key., type: int}
      public_key: {description: PEM of the public key the host reports., type: str, required: true}
      existing: {description: PEM of the certificate the host serves., type: str, required: true}
supports_check_mode: true
"""

RETURN = r"""
kept:
  description: The ids of the requests whose certificate is kept.
  type: list
  elements: str
serials: {description: The serial (hex) of each kept certificate, by id., type: dict}
"""

REQUEST_OPTIONS: dict[str, Any] = {
    "id": {"type": "str", "required": True},
    "common_name": {"type": "str", "required": True},
    "subject_alt_names": {"type": "list", "elements": "str", "default": []},
    "extended_key_usage": {"type": "str", "required": True},
    "key_type": {"type": "str", "required": True},
    "key_curve": {"type": "str", "default": "secp256r1"},
    "key_size": {"type": "int", "default": 3072},
    "public_key": {"type": "str", "required": True},
    "existing": {"type": "str", "required": True},
}


def decide(ca_dir: str, requests: list[dict[str, Any]], now: datetime) -> dict[str, Any]:
    """The module's work: which requests keep their certificate. Raises
    StoreError when the CA directory cannot be read."""
    generation = signing_generation(ca_dir)
    entries = read_record(ca_dir)
    revoked = set(revoked_identities(entries))
    revoked_serials = {entry.serial for entry in entries if entry.issuer == generation.key_id}
    serials: dict[str, str] = {}
    seen: set[str] = set()
    for request in requests:
        if request["id"] in seen:
            continue
        seen.add(request["id"])
        try:
            profile = Profile.checked(
                request["common_name"],
                request.get("subject_alt_names") or [],
                request["extended_key_usage"],
                request["key_type"],
                request.get("key_curve") or "secp256r1",
                request.get("key_size") or 3072,
            )
        except ValueError:
            continue
        if profile.common_name in revoked:
            continue
        certificate = kept_certificate(
            request["existing"],
            generation,
            profile,
            reported_public_key(request["public_key"]),
            revoked_serials,
            now,
        )
        if certificate is not None:
            serials[request["id"]] = serial_hex(certificate.serial_number)
    return {"changed": False, "kept": sorted(serials), "serials": serials}


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "dir": {"type": "path", "required": True},
            "requests": {
                "type": "list",
                "elements": "dict",
                "required": True,
                "options": REQUEST_OPTIONS,
            },
        },
        supports_check_mode=True,
    )
    if not HAS_YAML:
        module.fail_json(msg=missing_required_lib("PyYAML (python3-yaml)"))
    try:
        result = decide(module.params["dir"], module.params["requests"], datetime.now(UTC))
    except (StoreError, OSError) as exc:
        module.fail_json(msg=f"{module.params['dir']}: {exc}")
    module.exit_json(**result)


if __name__ == "__main__":
    main()
