#!/usr/bin/env python3
"""Report the public key of every PEM private key found under the given roots.

Used by the Molecule verify to prove where private keys are, and are not,
without ever printing a private key: each block found is handed to
`openssl pkey -pubout` and only the public key is reported. Encrypted
blocks are tried with $PISEC_SCAN_PASSPHRASE. Output: JSON on stdout.
Runs with the Python standard library only (as on a fresh Pi).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

SKIP_PREFIXES = ("/proc", "/sys", "/dev", "/run")
MAX_BYTES = 8 * 1024 * 1024
BLOCK = re.compile(
    rb"-----BEGIN ((?:ENCRYPTED |RSA |EC |DSA )?PRIVATE KEY)-----.+?-----END \1-----", re.DOTALL
)


def public_key(block: bytes) -> str | None:
    result = subprocess.run(
        ["openssl", "pkey", "-pubout", "-passin", "env:PISEC_SCAN_PASSPHRASE"],
        input=block,
        capture_output=True,
        env={**os.environ, "PISEC_SCAN_PASSPHRASE": os.environ.get("PISEC_SCAN_PASSPHRASE", "")},
        check=False,
    )
    return result.stdout.decode().strip() if result.returncode == 0 else None


def scan(roots: list[str]) -> dict[str, object]:
    found: list[dict[str, object]] = []
    seen: set[str] = set()  # roots may nest; read each file once
    files = 0
    for root in roots:
        for directory, subdirs, names in os.walk(root):
            subdirs[:] = [
                d for d in subdirs if not os.path.join(directory, d).startswith(SKIP_PREFIXES)
            ]
            for name in names:
                path = os.path.join(directory, name)
                if path in seen or os.path.islink(path) or not os.path.isfile(path):
                    continue
                seen.add(path)
                try:
                    # Size 0: an empty file holds no key, and a kernel file
                    # (a /proc mounted anywhere below a root, such as
                    # /proc/kmsg) reports 0 and may block when read.
                    if not 0 < os.path.getsize(path) <= MAX_BYTES:
                        continue
                    with open(path, "rb") as handle:
                        data = handle.read()
                except OSError:
                    continue
                files += 1
                for match in BLOCK.finditer(data):
                    found.append({"path": path, "public_key": public_key(match.group(0))})
    return {"files_read": files, "keys": found}


if __name__ == "__main__":
    json.dump(scan(sys.argv[1:]), sys.stdout)
