#!/usr/bin/python
"""Report what this Pi's mosquitto, OpenSSL and CPU support, in one run.

- Mosquitto's version (`mosquitto -h` prints it on 2.0 and 2.1) and the
  directory of its password-file and ACL-file plugins (2.1 and later, where
  the `password_file` and `acl_file` options are deprecated for them).
- The key-exchange groups of `openssl list -tls1_3 -tls-groups` (OpenSSL
  3.5 and later; OpenSSL 3.0 has no such option, which reports nothing).
- The CPU's feature line from /proc/cpuinfo (`flags` on x86, `Features` on
  ARM): whether it has AES instructions decides whether AES-GCM or
  ChaCha20-Poly1305 is the faster cipher.

- The owner, mode and checksum of the files pisec writes for mosquitto,
  and whether its service is enabled and running: the controller compares
  them with what it would write and leaves a converged broker alone.

Everything is returned as found, unparsed. It is the Pi's claim: the
controller parses it (plugins/filter/pisec_settings.py), and it can only
choose between forms of the configuration pisec writes and among, and the
order of, names the inventory gave.
"""

from __future__ import annotations

import glob
import os
from typing import Any

from ansible.module_utils.pisec_file_state import file_state

DOCUMENTATION = r"""
module: pisec_mosquitto_support
short_description: Report the Pi's mosquitto version and plugins, TLS groups and CPU features
description:
  - Runs C(mosquitto -h) and looks for mosquitto's plugin directory.
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
  files:
    description: Paths whose owner, group, mode and (for a file) SHA-256 are reported.
    type: list
    elements: path
    default: []
  service:
    description: A systemd unit whose enabled and active states are reported.
    type: str
    default: ""
"""

RETURN = r"""
mosquitto_version:
  description: The version C(mosquitto -h) printed, or an empty string (not installed).
  type: str
plugin_dir:
  description: >-
    The directory holding mosquitto_password_file.so and mosquitto_acl_file.so,
    or an empty string.
  type: str
tls_groups:
  description: What C(openssl list -tls1_3 -tls-groups) printed, or an empty string.
  type: str
cpu_features:
  description: >-
    The value of the first C(flags) or C(Features) line of C(/proc/cpuinfo),
    or an empty string.
  type: str
files:
  description: Each path of C(files) with C(exists), C(owner), C(group), C(mode) and C(sha256).
  type: dict
service:
  description: C(enabled) and C(active), what C(systemctl is-enabled) and C(is-active) print.
  type: dict
"""

CPUINFO = "/proc/cpuinfo"
# Debian's multiarch library directories: /usr/lib/<triplet>/mosquitto.
PLUGIN_DIRS = "/usr/lib/*/mosquitto"
PLUGINS = ("mosquitto_password_file.so", "mosquitto_acl_file.so")
# A feature line is a few hundred bytes; anything longer is cut, not parsed here.
MOST = 8192


def cpu_features(text: str) -> str:
    """The value of the first `flags` (x86) or `Features` (ARM) line."""
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() in ("flags", "Features"):
            return value.strip()[:MOST]
    return ""


def mosquitto_version(text: str) -> str:
    """The version in `mosquitto version 2.0.21`, the first line of `mosquitto -h`."""
    for line in text.splitlines():
        if line.startswith("mosquitto version "):
            return line[len("mosquitto version ") :].strip()[:64]
    return ""


def plugin_dir(pattern: str = PLUGIN_DIRS) -> str:
    """The first directory that holds both file plugins, or ''."""
    for directory in sorted(glob.glob(pattern)):
        if all(os.path.isfile(os.path.join(directory, name)) for name in PLUGINS):
            return directory
    return ""


def main() -> None:
    from ansible.module_utils.basic import AnsibleModule

    module = AnsibleModule(
        argument_spec={
            "groups": {"type": "bool", "default": True},
            "cpu": {"type": "bool", "default": True},
            "files": {"type": "list", "elements": "path", "default": []},
            "service": {"type": "str", "default": ""},
        },
        supports_check_mode=True,
    )
    result: dict[str, Any] = {
        "changed": False,
        "mosquitto_version": "",
        "plugin_dir": "",
        "tls_groups": "",
        "cpu_features": "",
    }
    mosquitto = module.get_bin_path("mosquitto", opt_dirs=["/usr/sbin"])
    if mosquitto:
        _, out, err = module.run_command([mosquitto, "-h"])
        result["mosquitto_version"] = mosquitto_version(out + "\n" + err)
        result["plugin_dir"] = plugin_dir()
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
    result["files"] = {path: file_state(path) for path in module.params["files"]}
    unit = module.params["service"]
    systemctl = module.get_bin_path("systemctl") if unit else None
    result["service"] = {}
    if systemctl:
        for state in ("enabled", "active"):
            _, out, _ = module.run_command([systemctl, f"is-{state}", "--", unit])
            result["service"][state] = out.strip()[:64]
    module.exit_json(**result)


if __name__ == "__main__":
    main()
