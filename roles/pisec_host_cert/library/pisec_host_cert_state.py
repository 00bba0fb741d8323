#!/usr/bin/python
"""Report how a host's key and certificate are laid out, in one module run.

pisec keeps each key with the request and certificate made for it in a
generation directory, `<dir>/<name>.d/<generation>/`, and serves the one
that the symlink `<dir>/<name>.d/live` names; `<dir>/<name>.key`, `.crt` and
`.csr` are symlinks through `live`. Switching `live` is one rename, so a
reader (mosquitto starting cold) always finds a key and the certificate made
for it. During a swap `<dir>/<name>.d/previous` names the generation served
before, until the swap is confirmed or rolled back.

It also reports, in the same run, what the controller needs to leave a
converged host alone: the public key of the served private key (computed
here; the key never leaves the host), the owner and mode of the served key
and certificate and of the directory, the checksum, owner and mode of the
trust bundle, and whether the Python cryptography library is there.

This module only reads. What it reports comes from the host and is treated
by the controller as the host's claim: names are checked against an
allow-list before the controller acts on them, and certificates are parsed
and compared on the controller.
"""

from __future__ import annotations

import os
import stat
from typing import Any

from ansible.module_utils.pisec_file_state import file_state

DOCUMENTATION = r"""
module: pisec_host_cert_state
short_description: Report the generations of a host's key and certificate
description:
  - Reads C(<dir>/<name>.d/) and the legacy files C(<dir>/<name>.key|crt|csr).
  - Returns the layout, the live and previous generations, the certificates
    they hold and every other entry (left by a killed run).
  - Changes nothing.
options:
  dir:
    description: The certificate directory.
    type: path
    required: true
  name:
    description: The file stem (C(pisec-server), C(client)).
    type: str
    required: true
  ca_path:
    description: The trust bundle's path, whose checksum, owner and mode are reported.
    type: path
  packages:
    description: Debian packages whose installation is reported (C(packages_missing)).
    type: list
    elements: str
  fact_path:
    description: >-
      The local fact file that records this certificate's paths
      (C(/etc/ansible/facts.d/pisec_cert_<name>.fact)), whose checksum, owner and mode are
      reported with those of its directory.
    type: path
"""

RETURN = r"""
layout:
  description: >-
    C(generations), C(legacy) (a plain key and certificate from before
    generations) or C(none).
  type: str
live:
  description: The generation C(live) names, or an empty string.
  type: str
previous:
  description: The generation C(previous) names (a swap not yet confirmed), or an empty string.
  type: str
stale:
  description: Entries of C(<name>.d) that are neither C(live), C(previous) nor what they name.
  type: list
key_exists:
  description: Whether the served generation (or the legacy layout) has a private key.
  type: bool
csr_exists:
  description: Whether the served generation (or the legacy layout) has a request.
  type: bool
certificate:
  description: PEM text of the served certificate, or an empty string.
  type: str
previous_certificate:
  description: PEM text of the previous generation's certificate, or an empty string.
  type: str
links:
  description: Whether C(<name>.key), C(.crt) and C(.csr) are the symlinks through C(live).
  type: bool
leftovers:
  description: Files of the legacy layout's swaps (C(*.new), C(*.prev)) that still exist.
  type: list
public_key:
  description: >-
    PEM (SubjectPublicKeyInfo) of the served private key's public key, or an empty string
    (no key, not readable, or no cryptography library).
  type: str
files:
  description: >-
    C(dir), C(key), C(crt), C(ca), C(fact) and C(facts_dir): each C(exists), C(owner),
    C(group), C(mode) (four octal digits) of the entry itself (not followed), and for a
    regular file its C(sha256).
  type: dict
packages_missing:
  description: The packages of C(packages) that dpkg does not list as installed.
  type: list
"""

# A certificate file larger than this is not pisec's; it is reported as absent.
MAX_CERTIFICATE_BYTES = 65536
EXTENSIONS = ("key", "crt", "csr")


def _link_target(path: str) -> str:
    """What a symlink names, if it is one and names an entry of its own directory."""
    if not os.path.islink(path):
        return ""
    target = os.readlink(path)
    if not target or "/" in target or target in (".", ".."):
        return ""
    return target


def _read_certificate(path: str) -> str:
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_CERTIFICATE_BYTES + 1)
    except OSError:
        return ""
    if len(data) > MAX_CERTIFICATE_BYTES:
        return ""
    return data.decode("ascii", errors="replace")


def _is_regular_file(path: str) -> bool:
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def _public_key(path: str) -> str:
    """The served key's public key as PEM, or empty; the key stays here."""
    try:
        from cryptography.hazmat.primitives import serialization
    except ImportError:
        return ""
    try:
        with open(path, "rb") as handle:
            key = serialization.load_pem_private_key(handle.read(MAX_CERTIFICATE_BYTES), None)
        return (
            key.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode("ascii")
        )
    except (OSError, ValueError, TypeError):
        return ""


def installed(dpkg_query_output: str) -> set[str]:
    """Names `dpkg-query -W -f '${Package} ${db:Status-Abbrev}\\n'` lists as installed."""
    found = set()
    for line in dpkg_query_output.splitlines():
        name, _, status = line.partition(" ")
        if status.startswith("ii"):
            found.add(name.split(":", 1)[0])
    return found


def inspect(directory: str, name: str, ca_path: str = "", fact_path: str = "") -> dict[str, Any]:
    """The state of `<directory>/<name>.*` as the module reports it."""
    base = os.path.join(directory, name)
    generations = base + ".d"
    live = _link_target(os.path.join(generations, "live"))
    if live and not os.path.isdir(os.path.join(generations, live)):
        live = ""
    previous = _link_target(os.path.join(generations, "previous"))
    if live:
        layout = "generations"
        served = os.path.join(generations, live, name)
    elif _is_regular_file(base + ".key") and _is_regular_file(base + ".crt"):
        layout = "legacy"
        served = base
    else:
        layout = "none"
        served = ""
    kept = {"live", "previous", live, previous}
    try:
        entries = sorted(os.listdir(generations)) if os.path.isdir(generations) else []
    except OSError:
        entries = []
    links = all(
        os.readlink(base + "." + ext) == f"{name}.d/live/{name}.{ext}"
        if os.path.islink(base + "." + ext)
        else False
        for ext in EXTENSIONS
    )
    return {
        "layout": layout,
        "live": live,
        "previous": previous,
        "stale": [entry for entry in entries if entry not in kept],
        "key_exists": bool(served) and _is_regular_file(served + ".key"),
        "csr_exists": bool(served) and _is_regular_file(served + ".csr"),
        "certificate": _read_certificate(served + ".crt") if served else "",
        "previous_certificate": (
            _read_certificate(os.path.join(generations, previous, name + ".crt"))
            if previous
            else ""
        ),
        "links": links,
        "leftovers": [
            f"{base}.{ext}.{suffix}"
            for ext in EXTENSIONS
            for suffix in ("new", "prev")
            if os.path.lexists(f"{base}.{ext}.{suffix}")
        ],
        "public_key": _public_key(served + ".key") if served else "",
        "files": {
            "dir": file_state(directory, "directory"),
            "key": file_state(served + ".key", "file") if served else {"exists": False},
            "crt": file_state(served + ".crt", "file") if served else {"exists": False},
            "ca": file_state(ca_path, "file") if ca_path else {"exists": False},
            "fact": file_state(fact_path, "file") if fact_path else {"exists": False},
            "facts_dir": (
                file_state(os.path.dirname(fact_path), "directory")
                if fact_path
                else {"exists": False}
            ),
        },
    }


def main() -> None:
    from ansible.module_utils.basic import AnsibleModule

    module = AnsibleModule(
        argument_spec={
            "dir": {"type": "path", "required": True},
            "name": {"type": "str", "required": True},
            "ca_path": {"type": "path", "default": ""},
            "packages": {"type": "list", "elements": "str", "default": []},
            "fact_path": {"type": "path", "default": ""},
        },
        supports_check_mode=True,
    )
    name = module.params["name"]
    if not name or "/" in name or name in (".", ".."):
        module.fail_json(msg=f"name must be a file stem without '/' (is {name!r})")
    packages = module.params["packages"]
    missing = []
    if packages:
        # argv, no shell: each name is one word whatever it holds.
        _, out, _ = module.run_command(
            ["dpkg-query", "-W", "-f", "${Package} ${db:Status-Abbrev}\\n", "--", *packages]
        )
        have = installed(out)
        missing = [package for package in packages if package not in have]
    module.exit_json(
        changed=False,
        packages_missing=missing,
        **inspect(
            module.params["dir"],
            name,
            module.params["ca_path"] or "",
            module.params["fact_path"] or "",
        ),
    )


if __name__ == "__main__":
    main()
