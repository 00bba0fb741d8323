#!/usr/bin/python
"""Read the fleet CA's public material in one call on the CA host.

Every host that gets a certificate, a trust bundle or a CRL needs the CA
certificates and CRLs of the generations that exist (previous, current and
next during a rollover), and the identities the fleet revoked (a broker
gives them no rights; the CA issues them nothing). Reading them with `stat`
and `slurp` costs several module runs on the CA host per host and per use;
this module reads them all in one and never touches a private key.
"""

from __future__ import annotations

import os
from typing import Any

from ansible.module_utils.pisec_ca_record import (
    HAS_YAML,
    read_record,
    revoked_identities,
)
from ansible.module_utils.pisec_ca_store import StoreError

DOCUMENTATION = r"""
module: pisec_ca_bundle
short_description: Read the CA certificates and CRLs of every CA generation
description:
  - Looks for C(ca.crt) in C(dir) plus each suffix of C(generations), in that order.
  - For every generation whose certificate exists, returns the certificate and its CRL
    (C(ca.crl)); a generation with a certificate but no CRL is an error naming the file.
  - Returns the identities the revocation record names and does not re-admit.
  - Reads nothing else; private keys are never opened.
options:
  dir:
    description: The CA directory (pisec_ca_dir); generations are this path plus a suffix.
    type: path
    required: true
  generations:
    description: Suffixes of the CA directories, oldest first.
    type: list
    elements: str
    default: [".previous", "", ".next"]
supports_check_mode: true
"""

EXAMPLES = r"""
- name: Read the CA certificates and CRLs on the CA host
  pisec_ca_bundle:
    dir: /srv/pisec/ca
  delegate_to: "{{ pisec_ca_host }}"
  register: pisec_ca__bundle
"""

RETURN = r"""
generations:
  description: One entry per suffix, in the order given.
  type: list
  elements: dict
  returned: always
  contains:
    suffix: {description: The suffix, type: str}
    exists: {description: Whether ca.crt exists for this generation, type: bool}
    certificate: {description: PEM of ca.crt (empty when it does not exist), type: str}
    crl: {description: PEM of ca.crl (empty when ca.crt does not exist), type: str}
revoked_identities:
  description: Identities (certificate CNs) revoked and not re-admitted, sorted.
  type: list
  elements: str
  returned: always
"""

MAX_BYTES = 1024 * 1024  # a CA certificate or CRL; anything bigger is not one


def _read(path: str) -> str:
    try:
        with open(path, encoding="ascii") as handle:
            text = handle.read(MAX_BYTES + 1)
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not ASCII; not a PEM certificate or CRL") from None
    if len(text) > MAX_BYTES:
        raise ValueError(f"{path}: larger than {MAX_BYTES} bytes; not a CA certificate or CRL")
    return text


def read_bundle(directory: str, generations: list[str]) -> list[dict[str, Any]]:
    """The certificate and CRL of each generation, as the module returns them.

    Raises OSError or ValueError naming the file that cannot be read.
    """
    found: list[dict[str, Any]] = []
    for suffix in generations:
        if "/" in suffix:
            raise ValueError(f"generations: {suffix!r} is a suffix, not a path")
        base = f"{directory.rstrip('/')}{suffix}"
        certificate_path = os.path.join(base, "ca.crt")
        if not os.path.isfile(certificate_path):
            found.append({"suffix": suffix, "exists": False, "certificate": "", "crl": ""})
            continue
        crl_path = os.path.join(base, "ca.crl")
        if not os.path.isfile(crl_path):
            raise ValueError(
                f"{crl_path}: missing beside {certificate_path} (run playbooks/ca.yml)"
            )
        certificate, crl = _read(certificate_path), _read(crl_path)
        if "-----BEGIN CERTIFICATE-----" not in certificate:
            raise ValueError(f"{certificate_path}: not a PEM certificate")
        if "-----BEGIN X509 CRL-----" not in crl:
            raise ValueError(f"{crl_path}: not a PEM CRL")
        found.append({"suffix": suffix, "exists": True, "certificate": certificate, "crl": crl})
    return found


def main() -> None:
    from ansible.module_utils.basic import AnsibleModule, missing_required_lib

    module = AnsibleModule(
        argument_spec={
            "dir": {"type": "path", "required": True},
            "generations": {
                "type": "list",
                "elements": "str",
                "default": [".previous", "", ".next"],
            },
        },
        supports_check_mode=True,
    )
    if not HAS_YAML:
        module.fail_json(msg=missing_required_lib("PyYAML (python3-yaml)"))
    try:
        generations = read_bundle(module.params["dir"], module.params["generations"])
        revoked = revoked_identities(read_record(module.params["dir"]))
    except (OSError, ValueError, StoreError) as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(changed=False, generations=generations, revoked_identities=revoked)


if __name__ == "__main__":
    main()
