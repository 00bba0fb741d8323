#!/usr/bin/python
"""Report what this Pi's OpenSSL and CPU offer the broker's TLS, in one run.

- The key-exchange groups of `openssl list -tls1_3 -tls-groups` (OpenSSL
  3.5 and later; OpenSSL 3.0 has no such option, which reports nothing).
- The CPU's feature line from /proc/cpuinfo (`flags` on x86, `Features` on
  ARM): whether it has AES instructions decides whether AES-GCM or
  ChaCha20-Poly1305 is the faster cipher.

Both are returned as printed, unparsed. They are the Pi's claims: the
controller parses them (plugins/filter/pisec_settings.py), and they can only
choose among, and reorder, names the inventory gave.
"""

from __future__ import annotations

from typing import Any

DOCUMENTATION = r"""
module: pisec_mosquitto_tls_support
short_description: Report the TLS groups of the Pi's OpenSSL and its CPU's features
description:
  - Runs C(openssl list -tls1_3 -tls-groups) and reads the first feature line of C(/proc/cpuinfo).
  - Changes nothing.
options:
  groups:
    description: Whether to ask OpenSSL for its key-exchange groups.
    type: bool
    default: true
  cpu:
    description: Whether to read the CPU's features.
    type: bool
    default: true
"""

RETURN = r"""
tls_groups:
  description: What C(openssl list -tls1_3 -tls-groups) printed, or an empty string.
  type: str
cpu_features:
  description: >-
    The value of the first C(flags) or C(Features) line of C(/proc/cpuinfo),
    or an empty string.
  type: str
"""

CPUINFO = "/proc/cpuinfo"
# A feature line is a few hundred bytes; anything longer is cut, not parsed here.
MOST = 8192


def cpu_features(text: str) -> str:
    """The value of the first `flags` (x86) or `Features` (ARM) line."""
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() in ("flags", "Features"):
            return value.strip()[:MOST]
    return ""


def main() -> None:
    from ansible.module_utils.basic import AnsibleModule

    module = AnsibleModule(
        argument_spec={
            "groups": {"type": "bool", "default": True},
            "cpu": {"type": "bool", "default": True},
        },
        supports_check_mode=True,
    )
    result: dict[str, Any] = {"changed": False, "tls_groups": "", "cpu_features": ""}
    if module.params["groups"]:
        openssl = module.get_bin_path("openssl")
        if openssl:
            rc, out, _ = module.run_command([openssl, "list", "-tls1_3", "-tls-groups"])
            result["tls_groups"] = out[:MOST] if rc == 0 else ""
    if module.params["cpu"]:
        try:
            with open(CPUINFO, encoding="utf-8", errors="replace") as handle:
                result["cpu_features"] = cpu_features(handle.read(1 << 20))
        except OSError:
            pass
    module.exit_json(**result)


if __name__ == "__main__":
    main()
