"""The preflight: every host's settings checked once, on the controller.

One task of playbooks/preflight.yml runs this for the whole inventory: each
host's variables (its inventory and extra vars over the roles' defaults) go
through the same allow-list filters the roles document
(plugins/filter/pisec_settings.py and friends). Nothing is asked of any
host, and everything wrong is reported at once, named with its host and
variable. The VPN's address plan is checked once, not once per host
(which read every host's variables for every host).

The roles do not check again: their `meta/argument_specs.yml` checks types
where a role is used on its own, and every playbook of pisec imports
playbooks/preflight.yml first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ansible.errors import AnsibleActionFail, AnsibleError
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.plugins.action import ActionBase
from ansible.template import trust_as_template

# Run-wide variables the roles' defaults may refer to (playbook_dir,
# ansible_playbook_python); the host's own come from its inventory.
RUN_VARIABLES = ("playbook_dir", "ansible_playbook_python", "ansible_check_mode")


class InventoryError(Exception):
    """One thing wrong with the inventory, already worded for the operator."""


class HostCheck:
    """Templates expressions against one host's variables over the roles' defaults."""

    def __init__(self, action: ActionModule, host: str, variables: dict[str, Any]) -> None:
        self.host = host
        self._templar = action._templar.copy_with_new_env(available_variables=variables)
        self.variables = variables
        self._values: dict[str, Any] = {}

    def value(self, expression: str, **given: Any) -> Any:
        """The value of a Jinja expression; `given` are Python values it may name."""
        if not given and expression in self._values:
            return self._values[expression]
        self.variables.update(given)
        try:
            if expression in self.variables:
                # A variable's own value: no expression to compile.
                value = self._templar.template(self.variables[expression])
            else:
                value = self._templar.template(trust_as_template("{{ " + expression + " }}"))
        except AnsibleError as error:
            raise InventoryError(_message(error)) from None
        finally:
            for name in given:
                self.variables.pop(name, None)
        if not given:
            self._values[expression] = value
        return value

    def settings(self, given: Mapping[str, Any]) -> None:
        """These values, each checked whole against its allow-list (a name
        without one, such as a list of users, has its own check below)."""
        self.value(
            "pisec__given | pisec_check_settings(inventory_hostname, only_known=true)",
            pisec__given=dict(given),
        )

    def require(self, condition: str, message: str) -> None:
        """Stop with `message` (an expression) unless `condition` holds."""
        if not self.value(condition):
            raise InventoryError(str(self.value(message)))


def _on_hosts(problem: str, hosts: list[str]) -> str:
    """A problem named with the hosts it was found on (once, however many)."""
    if not hosts or (len(hosts) == 1 and problem.startswith(f"{hosts[0]}: ")):
        return problem
    shown = ", ".join(hosts[:5]) + (f" and {len(hosts) - 5} more" if len(hosts) > 5 else "")
    return f"{shown}: {problem}"


def _message(error: AnsibleError) -> str:
    """The filter's own words, without Ansible's template context."""
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, AnsibleError) and cause.__cause__ is None:
            return str(cause.message)
        cause = cause.__cause__
    return str(error.message)


class ActionModule(ActionBase):  # type: ignore[misc]
    TRANSFERS_FILES = False
    _requires_connection = False
    _VALID_ARGS = frozenset({"roles_dir"})

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result: dict[str, Any] = super().run(tmp, task_vars)
        task_vars = task_vars or {}
        roles_dir = Path(str(self._task.args.get("roles_dir", "")))
        if not roles_dir.is_dir():
            raise AnsibleActionFail(
                f"pisec_preflight: roles_dir {str(roles_dir)!r} is not a directory"
            )
        defaults = self._defaults(roles_dir)
        specs = self._specs(roles_dir)
        hostvars = task_vars["hostvars"]
        groups: Mapping[str, Sequence[str]] = task_vars["groups"]
        run_variables = {name: task_vars[name] for name in RUN_VARIABLES if name in task_vars}

        def host_check(host: str) -> HostCheck:
            variables = {
                **defaults,
                **hostvars.raw_get(host),
                **run_variables,
                "inventory_hostname": host,
                "groups": groups,
                "hostvars": hostvars,
            }
            return HostCheck(self, host, variables)

        problems: dict[str, list[str]] = {}  # what is wrong: on which hosts
        ca = list(groups.get("pisec_ca", []))
        brokers = list(groups.get("pisec_brokers", []))
        clients = list(groups.get("pisec_clients", []))
        if len(ca) != 1 or not brokers:
            problems[
                "inventory: the group pisec_ca must hold exactly one host (the CA host, usually "
                "localhost) and pisec_brokers at least one broker. Found pisec_ca: "
                f"{ca}, pisec_brokers: {brokers}."
            ] = []
        pis = list(dict.fromkeys(brokers + clients))
        checks = {host: host_check(host) for host in groups.get("all", [])}
        for host, check in checks.items():
            try:
                _name(check)
            except InventoryError as problem:
                problems.setdefault(str(problem), []).append(host)
        for host, check in checks.items():
            for role in _roles(host, ca, brokers, clients):
                try:
                    if role in specs:
                        _options(check, role, specs[role])
                    if role in CHECKS:
                        CHECKS[role](check)
                except InventoryError as problem:
                    problems.setdefault(str(problem), []).append(host)
        if pis and not problems:
            try:
                _vpn_plan([checks[host] for host in pis])
            except InventoryError as problem:
                problems[str(problem)] = []
        if problems:
            worded = [_on_hosts(problem, hosts) for problem, hosts in problems.items()]
            result["failed"] = True
            result["msg"] = "The inventory needs fixing before anything changes:\n" + "\n".join(
                f"- {problem}" for problem in worded
            )
            return result
        result["changed"] = False
        result["msg"] = f"{len(checks)} hosts checked"
        return result

    def _specs(self, roles_dir: Path) -> dict[str, ArgumentSpecValidator]:
        """Each role's documented options (its `main` entry point)."""
        specs: dict[str, ArgumentSpecValidator] = {}
        for path in sorted(roles_dir.glob("*/meta/argument_specs.yml")):
            loaded = self._loader.load_from_file(str(path)) or {}
            main = loaded.get("argument_specs", {}).get("main", {})
            specs[path.parent.parent.name] = ArgumentSpecValidator(dict(main.get("options") or {}))
        return specs

    def _defaults(self, roles_dir: Path) -> dict[str, Any]:
        """Every role's defaults, as the roles would see them."""
        defaults: dict[str, Any] = {}
        for path in sorted(roles_dir.glob("*/defaults/main.yml")):
            loaded = self._loader.load_from_file(str(path), trusted_as_template=True) or {}
            for name in loaded.keys() & defaults.keys():
                raise AnsibleActionFail(f"pisec_preflight: {name} has a default in two roles")
            defaults.update(loaded)
        return defaults


def _roles(host: str, ca: list[str], brokers: list[str], clients: list[str]) -> list[str]:
    """The roles whose settings a host's variables feed, in the order of a run.

    The fleet's register and the CA's settings are read by every host (each
    signs through the CA host; pisec_fleet_devices feeds the CA, the brokers'
    ACL and the client Pis)."""
    roles = ["fleet", "pisec_ca"]
    if host in brokers or host in clients:
        # Before the broker's: pisec_mosquitto_vpn_interface defaults to
        # pisec_wireguard_interface, and the error should name what was set.
        roles.append("pisec_wireguard")
    if host in brokers:
        roles.append("pisec_mosquitto")
    if host in brokers or host in clients:
        roles.append("pisec_host_cert")
        roles.append("pisec_coaps")
    if host in clients:
        roles.append("pisec_mqtt_client")
    if host in ca:
        roles.append("pisec_rotation_job")
    return roles


def _options(check: HostCheck, role: str, validator: ArgumentSpecValidator) -> None:
    """The role's options: their types against its `meta/argument_specs.yml`,
    as the role would check them when it starts (too late: something may
    have changed), then each value that reaches a file or a command whole
    against its allow-list (plugins/filter/pisec_settings.py)."""
    given = {name: check.value(name) for name in validator.argument_spec if name in check.variables}
    errors = validator.validate(given, validate_role_argument_spec=True).error_messages
    if errors:
        raise InventoryError(f"{role} (meta/argument_specs.yml): " + "; ".join(errors))
    # The job's settings reach its units only where it is installed.
    if role == "pisec_rotation_job" and given.get("pisec_rotation_job_state") == "absent":
        return
    check.settings(given)


def _name(check: HostCheck) -> None:
    # A host name names files (pre-shared keys), lines in configuration
    # files and certificate requests: letters, digits and ._- only.
    check.value(
        "{'inventory_hostname': inventory_hostname} | pisec_check_settings(inventory_hostname)"
    )


def _ca(check: HostCheck) -> None:
    check.require(
        "pisec_ca_dir | length > 0"
        " and pisec_ca_crl_renew_before_days | int < pisec_ca_crl_validity_days | int",
        "'pisec_ca: pisec_ca_dir must not be empty, and pisec_ca_crl_renew_before_days (is '"
        " ~ pisec_ca_crl_renew_before_days ~ ') must be less than pisec_ca_crl_validity_days"
        " (is ' ~ pisec_ca_crl_validity_days ~ ').'",
    )
    check.require(
        "not (pisec_ca_passphrase_required | bool)"
        " or (pisec_ca_passphrase | default('', true) | length >= 12)",
        "'pisec_ca_passphrase: missing or shorter than 12 characters, and"
        " pisec_ca_passphrase_required is true. Put it in Ansible Vault"
        " (vault_pisec_ca_passphrase) and refer to it from group_vars, or set"
        " pisec_ca_passphrase_required: false for a throw-away CA.'",
    )
    check.require(
        "pisec_ca_device_validity_days | int <= pisec_ca_max_leaf_validity_days | int",
        "'pisec_ca_device_validity_days (is ' ~ pisec_ca_device_validity_days"
        " ~ ') must not exceed pisec_ca_max_leaf_validity_days (is '"
        " ~ pisec_ca_max_leaf_validity_days ~ '): the CA issues no longer certificate.'",
    )


# Names of earlier versions, and where each setting lives now: an
# inventory that still sets one stops instead of being silently ignored.
RENAMED = {
    "pisec_fleet_acl_patterns": "pisec_mosquitto_acl_patterns",
    "pisec_fleet_bundle_dir": "pisec_ca_device_bundle_dir",
    "pisec_fleet_device_key_type": "pisec_ca_device_key_type",
    "pisec_fleet_device_cert_validity_days": "pisec_ca_device_validity_days",
}


def _fleet(check: HostCheck) -> None:
    """The fleet's device register, the one setting no role owns: the CA
    issues its certificates, the brokers write its ACL, its Pis make keys."""
    renamed = [f"{old} is now {new}" for old, new in RENAMED.items() if old in check.variables]
    if renamed:
        raise InventoryError("; ".join(renamed) + " (rename it in the inventory)")
    check.value(
        "pisec_fleet_devices | default([])"
        " | pisec_resolve_devices(groups['pisec_clients'] | default([]))"
    )


def _vpn_plan(checks: list[HostCheck]) -> dict[str, str]:
    """The VPN's address plan, once: every VPN host agrees on its hub and prefix."""
    addresses = {
        check.host: check.value("pisec_wireguard_address | default('', true)") for check in checks
    }
    hubs = {
        check.host: (check.value("pisec_wireguard_hub"), str(check.value("pisec_wireguard_prefix")))
        for check in checks
    }
    first = checks[0].host
    for host, hub in hubs.items():
        if hub != hubs[first]:
            raise InventoryError(
                f"{host}: pisec_wireguard_hub and pisec_wireguard_prefix ({hub[0]!r}, {hub[1]}) "
                f"differ from {first}'s ({hubs[first][0]!r}, {hubs[first][1]}); the VPN has one "
                "hub and one network: set them for the whole inventory (group_vars/all)"
            )
    plan: dict[str, str] = checks[0].value(
        "pisec__addresses | pisec_vpn_plan(pisec_wireguard_hub, pisec_wireguard_prefix)",
        pisec__addresses=addresses,
    )
    return plan


def _broker(check: HostCheck) -> None:
    ports = check.value(
        "(pisec_mosquitto_tls_listeners | map(attribute='port') | map('int') | list)"
        " + ([pisec_mosquitto_plaintext_port | int]"
        "    if pisec_mosquitto_plaintext_listener == 'loopback' else [])"
    )
    if (
        any(not 1 <= port <= 65535 for port in ports)
        or len(set(ports)) != len(ports)
        or not check.value("pisec_mosquitto_tls_listeners | length > 0")
    ):
        raise InventoryError(
            f"{check.host}: pisec_mosquitto_tls_listeners[].port and pisec_mosquitto_plaintext_port"
            " must be distinct ports in 1..65535, with at least one TLS listener"
            f" (ports: {ports})."
        )
    check.require(
        "pisec_mosquitto_transport == 'tls' or pisec_mosquitto_vpn_address | length > 0",
        "inventory_hostname ~ ': pisec_mosquitto_transport ' ~ pisec_mosquitto_transport"
        " ~ ' needs the broker''s VPN address (pisec_mosquitto_vpn_address, by default"
        " pisec_wireguard_address).'",
    )
    # The fleet's register is checked once, under its own name (_fleet).
    if check.value("pisec_mosquitto_devices") != check.value("pisec_fleet_devices | default([])"):
        check.value(
            "pisec_mosquitto_devices | pisec_resolve_devices(groups['pisec_clients']"
            " | default([]), 'pisec_mosquitto_devices')"
        )
    check.value(
        "pisec_mosquitto_acl_patterns"
        " | pisec_check_acl('pisec_mosquitto_acl_patterns', patterns=true)"
    )
    # Names are checked below with the devices' (pisec_check_identities).
    short = check.value(
        "pisec_mosquitto_users | pisec_short_passwords(pisec_mosquitto_password_min_length,"
        " 'pisec_mosquitto_users')"
    )
    if short:
        raise InventoryError(
            f"{check.host}: the password of {', '.join(short)} is shorter than"
            f" {check.value('pisec_mosquitto_password_min_length')} characters"
            " (pisec_mosquitto_password_min_length)."
        )
    check.value(
        "pisec_mosquitto_extra_subject_alt_names"
        " | pisec_check_sans('pisec_mosquitto_extra_subject_alt_names')"
    )
    check.value(
        "{'pisec_mosquitto_users': pisec_mosquitto_users"
        "    | pisec_check_identities('pisec_mosquitto_users'),"
        " 'pisec_mosquitto_probe_user': ([{'name': pisec_mosquitto_probe_user}]"
        "    if pisec_mosquitto_probe_user | length > 0 else [])"
        "    | pisec_check_identities('pisec_mosquitto_probe_user'),"
        " 'pisec_mosquitto_devices': pisec_mosquitto_devices"
        "    | map(attribute='name') | list}"
        " | pisec_check_unique_across"
    )
    check.value("pisec_mosquitto_users | pisec_check_entry_acls('pisec_mosquitto_users')")


def _coaps(check: HostCheck) -> None:
    """The CoAPs gateway's devices are identities, checked whole (their names
    reach file names, a hint file and the broker's password file), and it
    publishes to the broker's loopback listener."""
    check.value("pisec_coaps_devices | pisec_check_identities('pisec_coaps_devices')")
    check.value(
        "pisec_mosquitto_gateway_identities | map('pisec_named')"
        " | pisec_check_identities('pisec_mosquitto_gateway_identities')"
    )
    if not check.value("pisec_coaps_enabled | bool") or check.host not in check.value(
        "groups['pisec_brokers'] | default([])"
    ):
        return
    check.require(
        "pisec_mosquitto_plaintext_listener == 'loopback'"
        " and pisec_coaps_broker_port | int == pisec_mosquitto_plaintext_port | int",
        'inventory_hostname ~ ": pisec_coaps_enabled needs the broker\'s loopback listener"'
        " ~ ' (pisec_mosquitto_plaintext_listener: loopback, is ' ~"
        " pisec_mosquitto_plaintext_listener ~ ') on pisec_coaps_broker_port (is '"
        ' ~ pisec_coaps_broker_port ~ ", the listener\'s port is "'
        " ~ pisec_mosquitto_plaintext_port ~ ').'",
    )
    check.require(
        "pisec_coaps_listen | length > 0",
        "inventory_hostname ~ ': pisec_coaps_listen names no address to listen on.'",
    )


def _host_cert(check: HostCheck) -> None:
    check.value(
        "pisec_host_cert_common_name | pisec_check_common_name('pisec_host_cert_common_name')"
    )
    check.value(
        "pisec_host_cert_extra_subject_alt_names"
        " | pisec_check_sans('pisec_host_cert_extra_subject_alt_names')"
    )


CHECKS = {
    "pisec_ca": _ca,
    "fleet": _fleet,
    "pisec_mosquitto": _broker,
    "pisec_host_cert": _host_cert,
    "pisec_coaps": _coaps,
}
