#!/usr/bin/python
"""Key and certificate bundles for devices Ansible cannot reach.

Runs on the CA host, for every unmanaged device in one run. A device that
cannot make its own key (a microcontroller flashed from the control node)
gets it made here: <bundle_dir>/<name>/<name>.key (0600), <name>.crt and
ca.crt (the fleet's trust bundle), in a 0700 directory. Its certificate
follows the rules of every pisec certificate: client authentication only,
no subject alternative names, CN = the device's name, renewed with a new
key once less than `renew_fraction_left` (plus jitter) of its lifetime is
left, when it expired, when another CA issued it (after a rollover's
switch) or when forced. A revoked device's bundle is left as it is.
"""

from __future__ import annotations

import contextlib
import os
from datetime import UTC, datetime
from typing import Any

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible.module_utils.pisec_ca_policy import (
    Profile,
    build_leaf,
    certificate_mismatch,
    renewal_due,
    validity,
)
from ansible.module_utils.pisec_ca_record import (
    HAS_YAML,
    read_record,
    revoked_identities,
)
from ansible.module_utils.pisec_ca_store import (
    Generation,
    StoreError,
    authority_key_identifier,
    certificate_signed_by,
    digest_for,
    is_recorded,
    load_ca_key,
    not_after,
    read_text,
    record_issued,
    serial_hex,
    signing_generation,
    trusted_generations,
    write_atomically,
)
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

DOCUMENTATION = r"""
module: pisec_ca_device_bundle
short_description: Make and renew the key and certificate bundles of unmanaged devices
options:
  dir: {description: The CA directory (pisec_ca_dir)., type: path, required: true}
  passphrase: {description: Passphrase of the CA key., type: str, no_log: true}
  bundle_dir: {description: Where bundles are written., type: path, required: true}
  devices: {description: Names of the unmanaged devices., type: list, elements: str, required: true}
  key_type: {description: ecdsa (P-256) or rsa (3072)., type: str}
  validity_days: {description: Lifetime of a new certificate., type: int, required: true}
  max_validity_days: {description: Longest lifetime the CA signs., type: int, required: true}
  not_before: {description: Backdating of a new certificate, such as -10m., type: str}
  renew_fraction_left:
    description: Renew below this fraction of the lifetime.
    type: float
    required: true
  renewal_jitter:
    description: Most extra fraction added to the threshold (a share per certificate and day).
    type: float
  force: {description: Renew every bundle now., type: bool}
supports_check_mode: true
"""

RETURN = r"""
devices:
  description: >-
    Per device its name, action (issued, renewed, reissued, kept or revoked), serial and days left.
  type: list
"""

RSA_BUNDLE_SIZE = 3072


def _load_key(path: str) -> Any:
    try:
        return serialization.load_pem_private_key(
            read_text(path, "a PEM private key").encode("ascii"), password=None
        )
    except (TypeError, ValueError):
        return None


def _load_certificate(path: str) -> x509.Certificate | None:
    if not os.path.isfile(path):
        return None
    try:
        return x509.load_pem_x509_certificate(read_text(path, "a PEM certificate").encode("ascii"))
    except (ValueError, StoreError):
        return None


def _new_key(profile: Profile) -> Any:
    if profile.key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=RSA_BUNDLE_SIZE)
    return ec.generate_private_key(ec.SECP256R1())


def decide(
    key: Any,
    certificate: x509.Certificate | None,
    profile: Profile,
    signing: Generation,
    revoked_serials: set[str],
    now: datetime,
    params: dict[str, Any],
) -> str:
    """issued (no key yet), renewed (new key), reissued (same key) or kept."""
    if key is None:
        return "issued"
    if profile.key_problem(key.public_key(), RSA_BUNDLE_SIZE) is not None:
        return "renewed"
    if (
        certificate is None
        or certificate_mismatch(certificate, profile, key.public_key()) is not None
        or serial_hex(certificate.serial_number) in revoked_serials
    ):
        return "reissued"
    if not certificate_signed_by(certificate, signing.certificate) or not is_recorded(
        signing, certificate
    ):
        # Another CA's (a rollover's switch) or one this CA did not record.
        return "renewed"
    if renewal_due(
        certificate,
        now,
        params["renew_fraction_left"],
        params["renewal_jitter"],
        params["force"],
    ):
        return "renewed"
    return "kept"


def _set_mode(path: str, mode: int, check_mode: bool) -> bool:
    if os.stat(path).st_mode & 0o7777 == mode:
        return False
    if not check_mode:
        os.chmod(path, mode)
    return True


def bundle_device(
    name: str,
    params: dict[str, Any],
    signing: Generation,
    trust_bundle: str,
    revoked: list[str],
    revoked_serials: set[str],
    check_mode: bool,
) -> dict[str, Any]:
    profile = Profile.checked(
        name, [], "clientAuth", params["key_type"], "secp256r1", RSA_BUNDLE_SIZE
    )
    directory = os.path.join(params["bundle_dir"], name)
    key_path = os.path.join(directory, f"{name}.key")
    certificate_path = os.path.join(directory, f"{name}.crt")
    if name in revoked:
        return {
            "name": name,
            "action": "revoked",
            "changed": False,
            "serial": "",
            "days_left": None,
        }
    changed = False
    if not os.path.isdir(directory):
        changed = True
        if not check_mode:
            os.makedirs(directory, mode=0o700)
    else:
        changed |= _set_mode(directory, 0o700, check_mode)
    now = datetime.now(UTC)
    key: Any = _load_key(key_path) if os.path.isfile(key_path) else None
    certificate = _load_certificate(certificate_path)
    action = decide(key, certificate, profile, signing, revoked_serials, now, params)
    if action != "kept":
        changed = True
        if not check_mode:
            if action in ("issued", "renewed"):
                key = _new_key(profile)
            start, end = validity(
                signing.certificate,
                now,
                params["not_before"],
                params["validity_days"],
                not_after(signing.certificate),
            )
            certificate = build_leaf(
                signing.certificate,
                params["_ca_key"](),
                key.public_key(),
                profile,
                start,
                end,
                digest_for(signing.certificate),
                authority_key_identifier(signing.certificate),
            )
            record_issued(signing, certificate)
            # The key first: a run killed between the two leaves a key whose
            # certificate does not match it, which the next run reissues.
            write_atomically(
                key_path,
                key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                ),
                0o600,
            )
            write_atomically(
                certificate_path, certificate.public_bytes(serialization.Encoding.PEM), 0o644
            )
    elif key is not None:
        changed |= _set_mode(key_path, 0o600, check_mode)
        changed |= _set_mode(certificate_path, 0o644, check_mode)
    ca_path = os.path.join(directory, "ca.crt")
    current_ca = read_text(ca_path, "a PEM certificate") if os.path.isfile(ca_path) else None
    if current_ca != trust_bundle:
        changed = True
        if not check_mode:
            write_atomically(ca_path, trust_bundle.encode("ascii"), 0o644)
    # Earlier versions left the request in the bundle; it is not for flashing.
    stale_request = os.path.join(directory, f"{name}.csr")
    if os.path.exists(stale_request):
        changed = True
        if not check_mode:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(stale_request)
    kept_or_new = certificate if (not check_mode or action == "kept") else None
    return {
        "name": name,
        "action": action,
        "changed": changed,
        "serial": serial_hex(kept_or_new.serial_number) if kept_or_new else "",
        "days_left": (not_after(kept_or_new) - now).days if kept_or_new else None,
    }


def run(params: dict[str, Any], check_mode: bool) -> list[dict[str, Any]]:
    if not 1 <= params["validity_days"] <= params["max_validity_days"]:
        raise ValueError(
            f"pisec_ca_device_validity_days {params['validity_days']} is outside "
            f"1..{params['max_validity_days']} (pisec_ca_max_leaf_validity_days)"
        )
    if not 0 < params["renew_fraction_left"] < 1 or not 0 <= params["renewal_jitter"] <= 0.5:
        raise ValueError("renew_fraction_left must be in (0, 1) and renewal_jitter in 0..0.5")
    signing = signing_generation(params["dir"])
    trust_bundle = "".join(
        read_text(generation.certificate_path, "a PEM certificate")
        for generation in trusted_generations(params["dir"])
    )
    record = read_record(params["dir"])
    revoked = revoked_identities(record)
    revoked_serials = {entry.serial for entry in record if entry.issuer == signing.key_id}
    keys: list[Any] = []

    def ca_key() -> Any:  # opened once, and only when something is signed
        if not keys:
            keys.append(load_ca_key(signing, params["passphrase"]))
        return keys[0]

    params = {**params, "_ca_key": ca_key}
    if params["devices"] and not check_mode:
        os.makedirs(params["bundle_dir"], mode=0o700, exist_ok=True)
    return [
        bundle_device(name, params, signing, trust_bundle, revoked, revoked_serials, check_mode)
        for name in params["devices"]
    ]


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "dir": {"type": "path", "required": True},
            "passphrase": {"type": "str", "no_log": True},
            "bundle_dir": {"type": "path", "required": True},
            "devices": {"type": "list", "elements": "str", "required": True},
            "key_type": {"type": "str", "default": "ecdsa", "choices": ["ecdsa", "rsa"]},
            "validity_days": {"type": "int", "required": True},
            "max_validity_days": {"type": "int", "required": True},
            "not_before": {"type": "str", "default": "-10m"},
            "renew_fraction_left": {"type": "float", "required": True},
            "renewal_jitter": {"type": "float", "default": 0.0},
            "force": {"type": "bool", "default": False},
        },
        supports_check_mode=True,
    )
    if not HAS_YAML:
        module.fail_json(msg=missing_required_lib("PyYAML (python3-yaml)"))
    try:
        devices = run(module.params, module.check_mode)
    except (StoreError, ValueError, OSError) as exc:
        module.fail_json(msg=f"device bundles: {exc}")
    module.exit_json(changed=any(device["changed"] for device in devices), devices=devices)


if __name__ == "__main__":
    main()
