#!/usr/bin/python
"""Test mosquitto's configuration before the broker is restarted or reloaded.

Mosquitto 2.1 quits when a reload finds an option it cannot use, and
`mosquitto --test-config -c FILE` (new in 2.1) reads the configuration as
the broker would, without starting one. On a Pi whose mosquitto is older,
which has no such option, the module only reports the version: 2.0 keeps
running on a bad reload, and a restart's failure shows in systemd.

It changes nothing. Its verdict is the Pi's: it can only stop a restart or
reload of that Pi's own broker, never let something through elsewhere.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

DOCUMENTATION = r"""
module: pisec_mosquitto_test_config
short_description: Test mosquitto's configuration with mosquitto --test-config (2.1 and later)
description:
  - Reads the version C(mosquitto -h) prints; from 2.1 on, runs
    C(mosquitto --test-config -c <config>) and fails with its output if the
    configuration is invalid.
  - Changes nothing.
options:
  config:
    description: The broker's main configuration file.
    type: path
    default: /etc/mosquitto/mosquitto.conf
"""

RETURN = r"""
version:
  description: The mosquitto version, or an empty string.
  type: str
tested:
  description: Whether C(--test-config) ran (mosquitto 2.1 and later).
  type: bool
output:
  description: What C(--test-config) printed.
  type: str
"""

_VERSION = re.compile(r"mosquitto version ([0-9]+)\.([0-9]+)(\.[0-9]+)?")


def version(text: str) -> tuple[int, int] | None:
    """(major, minor) from `mosquitto -h`'s first line, or None."""
    match = _VERSION.search(text)
    return (int(match[1]), int(match[2])) if match else None


Runner = Callable[[list[str]], tuple[int, str, str]]


def test_config(run: Runner, mosquitto: str, config: str) -> tuple[dict[str, Any], str]:
    """The module's result, and an error message if `config` was refused ('' if not)."""
    result: dict[str, Any] = {"changed": False, "version": "", "tested": False, "output": ""}
    _, out, err = run([mosquitto, "-h"])
    found = version(out + "\n" + err)
    if found:
        result["version"] = f"{found[0]}.{found[1]}"
    if found is None or found < (2, 1):
        return result, ""
    rc, out, err = run([mosquitto, "--test-config", "-c", config])
    result["tested"] = True
    result["output"] = (out + err).strip()
    if rc != 0:
        return result, f"mosquitto --test-config refused {config}: {result['output']}"
    return result, ""


def main() -> None:
    from ansible.module_utils.basic import AnsibleModule

    module = AnsibleModule(
        argument_spec={"config": {"type": "path", "default": "/etc/mosquitto/mosquitto.conf"}},
        supports_check_mode=True,
    )
    mosquitto = module.get_bin_path("mosquitto", opt_dirs=["/usr/sbin"], required=True)

    def run(argv: list[str]) -> tuple[int, str, str]:
        rc, out, err = module.run_command(argv)
        return rc, out, err

    result, error = test_config(run, mosquitto, module.params["config"])
    if error:
        module.fail_json(msg=error, **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
