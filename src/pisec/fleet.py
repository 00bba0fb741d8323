"""`pisec fleet certs`: what every host of the fleet holds, and what is due.

Hosts come from the Ansible inventory (`ansible-inventory --list`), so the
fleet is described once. Each host is reached over SSH with Fabric, in
parallel; only public files are read (the local facts, certificates and the
CRL), so no privilege escalation is needed. Where the files are is read from
the local facts the roles write on the host
(/etc/ansible/facts.d/pisec_cert_*.fact, one per certificate, and the
broker's pisec_mosquitto.fact): the paths are written down once, by the
roles, and every path is checked in full before it is read. The bundles of
devices Ansible cannot reach are read on this host, from the inventory's
bundle directory. Certificates are parsed here, with the same due rule the
roles apply (less than a third of the lifetime left); a CRL is due with
fewer than pisec_ca_crl_renew_before_days left, as the CA renews it.
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography import x509

from pisec.certfile import pem_blocks
from pisec.errors import PisecError
from pisec.rules import (
    CERT_FACT_DIR,
    CERT_FACT_PREFIX,
    CertFactError,
    cert_facts,
    checked_path,
    renewal_due,
    serial_hex,
)

# Where the roles record what they installed (pisec.rules: one local fact
# per certificate; the broker's own fact names its CRL).
FACT_FILES = (
    f"{CERT_FACT_DIR}/{CERT_FACT_PREFIX}*.fact",
    f"{CERT_FACT_DIR}/pisec_mosquitto.fact",
)
ROLE_OF_PURPOSE = {"server": "broker server", "client": "device client"}
CRL_ROLE = "broker CRL"
FACTS_ROLE = "local facts"
FLEET_GROUPS = ("pisec_brokers", "pisec_clients")
MARKER = "==> pisec-file "
BUNDLE_ROLE = "device bundle"
# The roles' defaults, where the inventory does not say otherwise.
DEFAULT_CRL_DAYS = 10  # pisec_ca_crl_renew_before_days
INVENTORY_DIR = "{{ inventory_dir }}"
DEFAULT_BUNDLE_DIR = f"{INVENTORY_DIR}/.pisec/devices"  # pisec_ca_device_bundle_dir


@dataclass(frozen=True)
class FleetHost:
    name: str
    address: str
    port: int
    user: str | None
    key_file: str | None


@dataclass(frozen=True)
class HeldCertificate:
    host: str
    role: str
    path: str
    serial: str | None
    not_before: datetime | None
    not_after: datetime | None
    days_left: int | None
    due: bool
    problem: str | None = None


@dataclass(frozen=True)
class HostReport:
    host: str
    reachable: bool
    error: str | None
    items: tuple[HeldCertificate, ...]


@dataclass(frozen=True)
class FleetInventory:
    """What `pisec fleet certs` needs from the inventory."""

    hosts: list[FleetHost]
    crl_days: int
    bundle_dir: Path | None
    bundles: tuple[str, ...]


def _first(values: Mapping[str, Any], *keys: str) -> Any:
    for key in keys:
        value = values.get(key)
        if value not in (None, ""):
            return value
    return None


def hosts_from_inventory(
    inventory: str, runner: Callable[[list[str]], str] | None = None
) -> list[FleetHost]:
    """Brokers and client Pis of the inventory with their SSH coordinates:
    `pisec_ssh_*` where set (e.g. for container fleets Ansible reaches
    otherwise), else Ansible's own `ansible_host`, `ansible_port`, ..."""
    return read_inventory(inventory, runner).hosts


def read_inventory(
    inventory: str, runner: Callable[[list[str]], str] | None = None
) -> FleetInventory:
    """The hosts, and from the CA host's variables the CRL renewal window
    and the unmanaged devices' bundles."""
    if runner is None:
        runner = _run_ansible_inventory
    raw = runner(["--list", "-i", inventory])
    try:
        data = json.loads(raw)
    except json.JSONDecodeError:
        raise PisecError(inventory, "ansible-inventory did not return JSON") from None
    hostvars: Mapping[str, Mapping[str, Any]] = data.get("_meta", {}).get("hostvars", {})
    ca_hosts = _group_hosts(data, "pisec_ca")
    ca_vars = hostvars.get(ca_hosts[0], {}) if ca_hosts else {}
    crl_days = ca_vars.get("pisec_ca_crl_renew_before_days", DEFAULT_CRL_DAYS)
    if (
        isinstance(crl_days, bool)
        or not isinstance(crl_days, int | str)
        or not str(crl_days).isdigit()
    ):
        raise PisecError(
            inventory,
            f"pisec_ca_crl_renew_before_days {crl_days!r} is not a number pisec can read here; "
            "give --crl-days",
        )
    clients = set(_group_hosts(data, "pisec_clients"))
    bundles = tuple(
        str(device["name"])
        for device in ca_vars.get("pisec_fleet_devices") or []
        if isinstance(device, Mapping)
        and "name" in device
        and not device.get("managed", str(device["name"]) in clients)
    )
    return FleetInventory(
        _fleet_hosts(inventory, data, hostvars),
        int(crl_days),
        _bundle_dir(inventory, ca_vars.get("pisec_ca_device_bundle_dir", DEFAULT_BUNDLE_DIR)),
        bundles,
    )


def _bundle_dir(inventory: str, value: Any) -> Path | None:
    """The bundle directory, when the inventory's value can be read without
    Ansible: a plain path, or the role's default under the inventory."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    if text.startswith(INVENTORY_DIR):
        path = Path(inventory)
        base = path if path.is_dir() else path.parent
        text = str(base) + text[len(INVENTORY_DIR) :]
    if "{{" in text or "{%" in text:
        return None
    return Path(text)


def _fleet_hosts(
    inventory: str, data: Mapping[str, Any], hostvars: Mapping[str, Mapping[str, Any]]
) -> list[FleetHost]:
    names: list[str] = []
    for group in FLEET_GROUPS:
        names.extend(_group_hosts(data, group))
    if not names:
        raise PisecError(inventory, "no hosts in pisec_brokers or pisec_clients")
    hosts = []
    for name in dict.fromkeys(names):
        values = hostvars.get(name, {})
        port = _first(values, "pisec_ssh_port", "ansible_port", "ansible_ssh_port") or 22
        try:
            port_number = int(port)
        except (TypeError, ValueError):
            raise PisecError(inventory, f"{name}: SSH port {port!r} is not a number") from None
        hosts.append(
            FleetHost(
                name=name,
                address=str(_first(values, "pisec_ssh_host", "ansible_host") or name),
                port=port_number,
                user=_first(values, "pisec_ssh_user", "ansible_user", "ansible_ssh_user"),
                key_file=_first(values, "pisec_ssh_key", "ansible_ssh_private_key_file"),
            )
        )
    return hosts


def _group_hosts(data: Mapping[str, Any], group: str, seen: set[str] | None = None) -> list[str]:
    seen = seen or set()
    if group in seen:
        return []
    seen.add(group)
    entry = data.get(group, {})
    hosts = list(entry.get("hosts", []))
    for child in entry.get("children", []):
        hosts.extend(_group_hosts(data, child, seen))
    return hosts


def _run_ansible_inventory(args: list[str]) -> str:
    tool = Path(sys.executable).parent / "ansible-inventory"
    command = str(tool) if tool.exists() else shutil.which("ansible-inventory")
    if command is None:
        raise PisecError("ansible-inventory", "not installed (run `make venv`)")
    result = subprocess.run([command, *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["failed"])[-1]
        raise PisecError(args[-1], f"ansible-inventory: {last}")
    return result.stdout


def facts_command() -> str:
    """Print every pisec local fact file on the host, each after a marker.
    Fixed text: nothing from the inventory or the host is in it."""
    patterns = " ".join(FACT_FILES)
    return (
        f'for f in {patterns}; do if [ -r "$f" ]; then '
        f'echo {shlex.quote(MARKER)}"$f"; cat "$f"; echo; fi; done; true'
    )


def remote_command(paths: Iterable[str]) -> str:
    """Print every file of `paths` that exists, each after a marker line.
    Each path was checked in full (managed_files) and is quoted."""
    parts = []
    for path in paths:
        quoted = shlex.quote(path)
        parts.append(
            f"if [ -r {quoted} ]; then echo {shlex.quote(MARKER + path)}; cat {quoted}; fi"
        )
    return "; ".join([*parts, "true"])


def managed_files(files: Mapping[str, bytes]) -> list[tuple[str, str]]:
    """What pisec installed on a host, as (role, path), from the local fact
    files among `files` (the output of facts_command, split). Raises
    CertFactError naming the fact and field when one is not what the roles
    write: the host's root can write anything there."""
    local: dict[str, Any] = {}
    for path, data in files.items():
        name = path.rsplit("/", 1)[-1]
        if not (path.startswith(CERT_FACT_DIR + "/") and name.endswith(".fact")):
            continue
        stem = name.removesuffix(".fact")
        try:
            local[stem] = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CertFactError(f"{path} is not JSON ({exc})") from None
    managed = [
        (ROLE_OF_PURPOSE[fact["purpose"]], fact["certificate"]) for fact in cert_facts(local)
    ]
    broker = local.get("pisec_mosquitto")
    if isinstance(broker, Mapping) and "crl_file" in broker:
        managed.append(
            (CRL_ROLE, checked_path(broker["crl_file"], "ansible_local.pisec_mosquitto.crl_file"))
        )
    return managed


def split_files(output: str) -> dict[str, bytes]:
    files: dict[str, list[str]] = {}
    current: str | None = None
    for line in output.splitlines(keepends=True):
        if line.startswith(MARKER):
            current = line[len(MARKER) :].strip()
            files[current] = []
        elif current is not None:
            files[current].append(line)
    return {path: "".join(lines).encode() for path, lines in files.items()}


# The renewal rule of the roles too (pisec.rules, one implementation).
is_due = renewal_due


def assess(
    host: str,
    files: Mapping[str, bytes],
    now: datetime,
    fraction_left: float,
    crl_days: int,
) -> list[HeldCertificate]:
    """Every certificate and CRL the host's local facts name, as found in
    `files`; a fact that is not what pisec writes is one problem item."""
    try:
        managed = managed_files(files)
    except CertFactError as exc:
        return [
            HeldCertificate(host, FACTS_ROLE, CERT_FACT_DIR, None, None, None, None, True, str(exc))
        ]
    return assess_files(host, files, managed, now, fraction_left, crl_days)


def assess_files(
    host: str,
    files: Mapping[str, bytes],
    managed: Iterable[tuple[str, str]],
    now: datetime,
    fraction_left: float,
    crl_days: int,
) -> list[HeldCertificate]:
    """The certificates and CRLs of `managed` (role, path) found in `files`."""
    held: list[HeldCertificate] = []
    for role, path in managed:
        data = files.get(path)
        if data is None:
            continue
        try:
            if role == CRL_ROLE:
                # During a CA rollover the file holds one CRL per trusted CA.
                blocks = [block.text for block in pem_blocks(data) if block.label == "X509 CRL"]
                for block in blocks or [data]:
                    crl = x509.load_pem_x509_crl(block)
                    next_update = crl.next_update_utc
                    days = None if next_update is None else (next_update - now).days
                    held.append(
                        HeldCertificate(
                            host,
                            role,
                            path,
                            None,
                            crl.last_update_utc,
                            next_update,
                            days,
                            next_update is None or (next_update - now).days < crl_days,
                        )
                    )
                continue
            certificate = x509.load_pem_x509_certificate(data)
        except ValueError as exc:
            held.append(
                HeldCertificate(
                    host, role, path, None, None, None, None, True, f"unreadable: {exc}"
                )
            )
            continue
        not_before = certificate.not_valid_before_utc
        not_after = certificate.not_valid_after_utc
        held.append(
            HeldCertificate(
                host,
                role,
                path,
                serial_hex(certificate.serial_number),
                not_before,
                not_after,
                (not_after - now).days,
                is_due(not_before, not_after, now, fraction_left),
            )
        )
    return held


def assess_bundles(
    bundle_dir: Path, names: Iterable[str], now: datetime, fraction_left: float
) -> list[HostReport]:
    """One report per unmanaged device: the certificate of its bundle on
    this host (the key is never opened)."""
    reports = []
    for device in names:
        path = bundle_dir / device / f"{device}.crt"
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            item = HeldCertificate(
                device, BUNDLE_ROLE, str(path), None, None, None, None, True, "no bundle yet"
            )
        except OSError as exc:
            item = HeldCertificate(
                device,
                BUNDLE_ROLE,
                str(path),
                None,
                None,
                None,
                None,
                True,
                f"unreadable: {exc.strerror or exc}",
            )
        else:
            [item] = assess_files(
                device, {str(path): data}, ((BUNDLE_ROLE, str(path)),), now, fraction_left, 0
            )
        reports.append(HostReport(device, True, None, (item,)))
    return reports


def read_over_ssh(host: FleetHost, timeout: float, known_hosts: Path | None = None) -> str:
    """Read the host's pisec local facts, then the files they name (two
    commands on one connection). Host keys must already be known
    (the user's and the system's known_hosts, plus `known_hosts`): an
    unknown or changed key is refused, never silently accepted."""
    import paramiko  # imported here: paramiko is slow to import
    from fabric import Connection

    connect_kwargs: dict[str, Any] = {"look_for_keys": True, "allow_agent": True}
    if host.key_file:
        connect_kwargs["key_filename"] = str(Path(host.key_file).expanduser())
    connection = Connection(
        host.address,
        user=host.user,
        port=host.port,
        connect_timeout=timeout,
        connect_kwargs=connect_kwargs,
    )
    connection.client.set_missing_host_key_policy(paramiko.RejectPolicy())
    if known_hosts is not None:
        connection.client.load_host_keys(str(known_hosts))
    with connection:
        facts = connection.run(facts_command(), hide=True, warn=True, timeout=timeout * 3)
        if facts.exited != 0:
            raise OSError(f"remote command exited {facts.exited}: {facts.stderr.strip()[:200]}")
        try:
            paths = [path for _, path in managed_files(split_files(str(facts.stdout)))]
        except CertFactError:
            return str(facts.stdout)  # assess() reports the fact; nothing else is read
        result = connection.run(remote_command(paths), hide=True, warn=True, timeout=timeout * 3)
        if result.exited != 0:
            raise OSError(f"remote command exited {result.exited}: {result.stderr.strip()[:200]}")
        return str(facts.stdout) + str(result.stdout)


def survey(
    hosts: Iterable[FleetHost],
    *,
    timeout: float = 10.0,
    fraction_left: float = 1 / 3,
    crl_days: int = 10,
    progress: Callable[[str], None] | None = None,
    reader: Callable[[FleetHost, float], str] = read_over_ssh,
) -> list[HostReport]:
    hosts = list(hosts)
    now = datetime.now(UTC)
    reports: dict[str, HostReport] = {}
    with ThreadPoolExecutor(max_workers=min(16, max(1, len(hosts)))) as pool:
        futures = {pool.submit(reader, host, timeout): host for host in hosts}
        for done, future in enumerate(as_completed(futures), start=1):
            host = futures[future]
            try:
                output = future.result()
            except Exception as exc:  # every failure is a finding about that host
                reports[host.name] = HostReport(host.name, False, _explain(exc, host), ())
            else:
                items = assess(host.name, split_files(output), now, fraction_left, crl_days)
                reports[host.name] = HostReport(host.name, True, None, tuple(items))
            if progress:
                progress(f"[{done}/{len(hosts)}] {host.name}")
    return [reports[host.name] for host in hosts]


def _explain(exc: BaseException, host: FleetHost) -> str:
    text = str(exc).strip() or type(exc).__name__
    where = f"{host.user + '@' if host.user else ''}{host.address}:{host.port}"
    return f"{where}: {type(exc).__name__}: {text}"[:300]
