"""The roles' templates rendered as Ansible's template module renders them,
for tests that check what a file on a host would say."""

from __future__ import annotations

from typing import Any

import jinja2
import yaml
from ansible.plugins.filter.core import combine, comment, to_bool, to_json, to_nice_json

from plugins.filter.pisec_settings import (
    chacha_first,
    check_value,
    cipher_order,
    mosquitto_plugins,
    tls_groups,
)
from plugins.filter.pisec_vpn import vpn_network
from tests.conftest import PROJECT

ROLES = PROJECT / "roles"


def role_defaults(role: str) -> dict[str, Any]:
    loaded = yaml.safe_load((ROLES / role / "defaults/main.yml").read_text())
    assert isinstance(loaded, dict)
    return loaded


def role_vars(role: str) -> dict[str, Any]:
    loaded = yaml.safe_load((ROLES / role / "vars/main.yml").read_text())
    assert isinstance(loaded, dict)
    return loaded


def _environment() -> jinja2.Environment:
    # As Ansible's template module: trim_blocks on, undefined is an error.
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(ROLES)),
        trim_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
        autoescape=False,
    )
    environment.filters.update(
        {
            "comment": comment,
            "bool": to_bool,
            "combine": combine,
            "to_json": to_json,
            "to_nice_json": to_nice_json,
            "pisec_vpn_network": vpn_network,
            "pisec_check_value": check_value,
            "pisec_tls_groups": tls_groups,
            "pisec_tls_chacha_first": chacha_first,
            "pisec_tls_cipher_order": cipher_order,
            "pisec_mosquitto_plugins": mosquitto_plugins,
        }
    )
    return environment


ENVIRONMENT = _environment()


def render(template: str, context: dict[str, Any]) -> str:
    """`template` is a path under roles/."""
    return ENVIRONMENT.get_template(template).render(context)
