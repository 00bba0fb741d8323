#!/usr/bin/python
"""Manage a Mosquitto password file idempotently.

mosquitto_passwd re-salts on every call, so a playbook that uses it reports
a change on every run, and it hashes with only 101 PBKDF2 iterations. This
module writes the same `$7$` (PBKDF2-HMAC-SHA512) format with a chosen
iteration count and keeps a user's line as long as the password still
verifies against it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import tempfile
from dataclasses import dataclass
from typing import Any

DOCUMENTATION = r"""
module: pisec_mosquitto_passwd
short_description: Manage a Mosquitto password file with PBKDF2-SHA512 hashes
description:
  - Writes C(username:$7$iterations$salt$hash) lines as mosquitto_passwd does.
  - A line whose hash still verifies the given password is kept unchanged.
  - Users not listed are removed; the file holds exactly the given users.
options:
  path:
    description: Password file.
    type: path
    required: true
  users:
    description: Users, each with C(name) and C(password).
    type: list
    elements: dict
    required: true
  iterations:
    description: PBKDF2 iterations for new hashes. Existing hashes with fewer are rehashed.
    type: int
    default: 50000
supports_check_mode: true
extends_documentation_fragment:
  - ansible.builtin.files
"""

EXAMPLES = r"""
- name: Write the password file
  pisec_mosquitto_passwd:
    path: /etc/mosquitto/pisec/passwd
    users:
      - name: sensor-01
        password: "{{ vault_sensor_01_password }}"
    iterations: 50000
    owner: mosquitto
    group: mosquitto
    mode: "0400"
  no_log: true
"""

RETURN = r"""
added:
  description: Users that had no line before.
  type: list
  returned: always
updated:
  description: Users whose hash was rewritten (password or iteration count changed).
  type: list
  returned: always
removed:
  description: Users whose line was removed.
  type: list
  returned: always
"""

SALT_BYTES = 12  # what mosquitto_passwd uses
HASH_BYTES = 64  # SHA-512 output


@dataclass(frozen=True)
class Pbkdf2Hash:
    iterations: int
    salt: bytes
    digest: bytes

    @classmethod
    def parse(cls, text: str) -> Pbkdf2Hash | None:
        """Parse `$7$iterations$salt$hash`; None for any other format."""
        parts = text.split("$")
        if len(parts) != 5 or parts[0] != "" or parts[1] != "7":
            return None
        try:
            iterations = int(parts[2])
            salt = base64.b64decode(parts[3], validate=True)
            digest = base64.b64decode(parts[4], validate=True)
        except ValueError:
            return None
        if iterations < 1 or not salt or len(digest) != HASH_BYTES:
            return None
        return cls(iterations, salt, digest)

    @classmethod
    def new(cls, password: str, iterations: int) -> Pbkdf2Hash:
        salt = secrets.token_bytes(SALT_BYTES)
        return cls(iterations, salt, _derive(password, salt, iterations))

    def verifies(self, password: str) -> bool:
        return hmac.compare_digest(_derive(password, self.salt, self.iterations), self.digest)

    def render(self) -> str:
        salt = base64.b64encode(self.salt).decode()
        digest = base64.b64encode(self.digest).decode()
        return f"$7${self.iterations}${salt}${digest}"


def _derive(password: str, salt: bytes, iterations: int) -> bytes:
    return hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, iterations, HASH_BYTES)


@dataclass(frozen=True)
class Plan:
    lines: list[str]
    added: list[str]
    updated: list[str]
    removed: list[str]

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.removed)


def parse_file(text: str) -> dict[str, str]:
    """Map username to the hash part of each `user:hash` line."""
    entries: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#") or ":" not in line:
            continue
        name, _, hashed = line.partition(":")
        entries[name] = hashed
    return entries


def plan(existing: dict[str, str], users: list[tuple[str, str]], iterations: int) -> Plan:
    lines: list[str] = []
    added: list[str] = []
    updated: list[str] = []
    for name, password in users:
        current = Pbkdf2Hash.parse(existing.get(name, ""))
        if current is not None and current.iterations >= iterations and current.verifies(password):
            lines.append(f"{name}:{current.render()}")
            continue
        (updated if name in existing else added).append(name)
        lines.append(f"{name}:{Pbkdf2Hash.new(password, iterations).render()}")
    listed = {name for name, _ in users}
    removed = sorted(name for name in existing if name not in listed)
    return Plan(lines, added, updated, removed)


def main() -> None:
    from ansible.module_utils.basic import AnsibleModule

    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "required": True},
            "users": {
                "type": "list",
                "elements": "dict",
                "required": True,
                "no_log": True,
                "options": {
                    "name": {"type": "str", "required": True},
                    "password": {"type": "str", "required": True, "no_log": True},
                },
            },
            "iterations": {"type": "int", "default": 50000},
        },
        add_file_common_args=True,
        supports_check_mode=True,
    )
    path: str = module.params["path"]
    iterations: int = module.params["iterations"]
    users: list[dict[str, Any]] = module.params["users"]
    names = [str(user["name"]) for user in users]
    if len(set(names)) != len(names):
        module.fail_json(msg=f"{path}: duplicate user names in users: {sorted(names)}")
    if any(":" in name or "\n" in name for name in names):
        module.fail_json(msg=f"{path}: a user name may not contain ':' or a newline")
    if iterations < 1000:
        module.fail_json(msg=f"iterations: {iterations} is too few (at least 1000)")

    existing_text = ""
    if os.path.exists(path):
        with open(path, encoding="utf-8") as handle:
            existing_text = handle.read()
    result = plan(
        parse_file(existing_text),
        [(str(user["name"]), str(user["password"])) for user in users],
        iterations,
    )
    changed = result.changed
    diff = {
        "before": "".join(f"{name}\n" for name in sorted(parse_file(existing_text))),
        "after": "".join(f"{name}\n" for name in sorted(names)),
        "before_header": f"{path} (users)",
        "after_header": f"{path} (users)",
    }
    if changed and not module.check_mode:
        directory = os.path.dirname(path) or "."
        fd, tmp_path = tempfile.mkstemp(prefix=".pisec-passwd.", dir=directory)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write("".join(f"{line}\n" for line in result.lines))
        module.atomic_move(tmp_path, path)
    file_args = module.load_file_common_arguments(module.params)
    if os.path.exists(path):
        changed = module.set_fs_attributes_if_different(file_args, changed)
    module.exit_json(
        changed=changed,
        added=result.added,
        updated=result.updated,
        removed=result.removed,
        diff=diff,
    )


if __name__ == "__main__":
    main()
