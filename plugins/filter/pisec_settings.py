"""Allow-lists for every inventory value that reaches a file or a command.

The preflight runs each role's settings through `pisec_check_settings`
before anything changes anywhere. Every check matches the whole value
(`fullmatch`, never `$`, which lets a trailing newline through) against
what the file it lands in can hold as one token: a value that could end a
line, open a section, start a comment or carry a `%` specifier is refused,
naming the host and the variable. What passes is returned normalised
(numbers as numbers, booleans as booleans); the roles still read their
variables, which the checks have shown to be safe as written, and test a
boolean with `| bool`.

`pisec_check_value` checks one value of a given kind the same way; it is
also used on what a Pi reports (a WireGuard public key, an address), which
is as untrusted as the inventory.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from ansible.errors import AnsibleFilterError


class SettingError(ValueError):
    """A value outside its allow-list; the text says what is allowed."""


Check = Callable[[Any], Any]

# OpenSSL names pisec accepts. TLS 1.2: forward secrecy and AEAD only.
TLS12_CIPHERS = frozenset(
    {
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "ECDHE-ECDSA-AES128-CCM",
        "ECDHE-ECDSA-AES256-CCM",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-RSA-CHACHA20-POLY1305",
        "DHE-RSA-AES128-GCM-SHA256",
        "DHE-RSA-AES256-GCM-SHA384",
        "DHE-RSA-CHACHA20-POLY1305",
    }
)
TLS13_CIPHERSUITES = frozenset(
    {
        "TLS_AES_128_GCM_SHA256",
        "TLS_AES_256_GCM_SHA384",
        "TLS_CHACHA20_POLY1305_SHA256",
        "TLS_AES_128_CCM_SHA256",
        "TLS_AES_128_CCM_8_SHA256",
    }
)
# Key-exchange groups both bookworm's OpenSSL 3.0 and trixie's 3.5 know.
TLS_GROUPS = frozenset(
    {
        "X25519",
        "X448",
        "P-256",
        "P-384",
        "P-521",
        "secp256r1",
        "secp384r1",
        "secp521r1",
        "prime256v1",
        "ffdhe2048",
        "ffdhe3072",
        "ffdhe4096",
        "ffdhe6144",
        "ffdhe8192",
    }
)
# Hybrid post-quantum key-exchange groups (ML-KEM with an elliptic curve),
# in OpenSSL 3.5 (trixie) and later; OpenSSL 3.0 (bookworm) has none.
TLS_PQ_GROUPS = frozenset({"X25519MLKEM768", "SecP256r1MLKEM768", "SecP384r1MLKEM1024"})
# What `openssl list -tls1_3 -tls-groups` prints: group names joined by ':'.
_OPENSSL_GROUPS = re.compile(r"[A-Za-z0-9_-]{1,64}(:[A-Za-z0-9_-]{1,64}){0,255}")
# The value of /proc/cpuinfo's `flags` (x86) or `Features` (ARM) line: feature
# names separated by single spaces.
_CPU_FEATURES = re.compile(r"[A-Za-z0-9_.-]{1,64}( [A-Za-z0-9_.-]{1,64}){0,1023}")
# What `mosquitto -h` names its version, and where Debian puts its plugins
# (/usr/lib/<multiarch triplet>/mosquitto).
_MOSQUITTO_VERSION = re.compile(r"([0-9]{1,3})\.([0-9]{1,3})(\.[0-9]{1,4})?")
_MOSQUITTO_PLUGIN_DIR = re.compile(r"/usr/lib/[a-z0-9_-]{1,64}/mosquitto")

_DNS_NAME = re.compile(
    r"(?=.{1,253}\Z)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
)
# An inventory host name: it names files (pre-shared keys), comments in
# configuration files and SANs. Letters, digits and . _ - only.
_HOST_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,252}")
# wg-quick's own rule for an interface name, less '=' and '+'; IFNAMSIZ 16.
_INTERFACE = re.compile(r"(?!\.{1,2}\Z)(?!-)[A-Za-z0-9_.-]{1,15}")
# An absolute path that needs no quoting anywhere: in a systemd unit
# (no '%' specifier, '$' expansion, quote, backslash or white space), in a
# shell word, in an INI file.
_PATH = re.compile(r"/[A-Za-z0-9._@+/-]{0,4095}")
_USER = re.compile(r"[a-z_][a-z0-9_-]{0,31}")
# A unit name never starts with '-' here: it would be an option to systemctl.
_UNIT = re.compile(r"(?!-)[A-Za-z0-9:_.@-]{1,255}")
_PACKAGE = re.compile(r"[a-z0-9][a-z0-9+.-]{1,127}")
_ARGUMENT = re.compile(r"[A-Za-z0-9._@+/=:,-]{1,255}")
_CALENDAR = re.compile(r"(?!-)[A-Za-z0-9 ,:*./~-]{1,128}")
_EXPIRY = re.compile(r"[1-9][0-9]{0,5}[hdwmy]")
_NOT_BEFORE = re.compile(r"-(?=[0-9])([0-9]+w)?([0-9]+d)?([0-9]+h)?([0-9]+m)?([0-9]+s)?")
_FILE_MODE = re.compile(r"0[0-7]{3}")
# A WireGuard key: 32 bytes in base64 (the last character carries 4 bits).
_WIREGUARD_KEY = re.compile(r"[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=")
_INTEGER = re.compile(r"-?[0-9]{1,19}")
_DECIMAL = re.compile(r"[0-9]{1,6}(\.[0-9]{1,9})?")
_BOOLEANS = {
    **dict.fromkeys(("true", "yes", "on", "1"), True),
    **dict.fromkeys(("false", "no", "off", "0"), False),
}


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise SettingError("must be a string")
    return value


def _matching(pattern: re.Pattern[str], allowed: str, *, empty: bool = False) -> Check:
    def check(value: Any) -> str:
        text = _text(value)
        if (empty and text == "") or pattern.fullmatch(text):
            return text
        raise SettingError(f"must be {allowed}" + (" or empty" if empty else ""))

    return check


def _integer(low: int, high: int, *, also: int | None = None) -> Check:
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise SettingError(f"must be a whole number {low}..{high}")
        if isinstance(value, str) and not _INTEGER.fullmatch(value):
            raise SettingError(f"must be a whole number {low}..{high}")
        number = int(value)
        if number == also or low <= number <= high:
            return number
        extra = f" or {also}" if also is not None else ""
        raise SettingError(f"must be {low}..{high}{extra}")

    return check


def _decimal(low: float, high: float, *, exclusive: bool = False) -> Check:
    allowed = f"between {low:g} and {high:g}" if exclusive else f"{low:g}..{high:g}"

    def check(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise SettingError(f"must be a number {allowed}")
        if isinstance(value, str) and not _DECIMAL.fullmatch(value):
            raise SettingError(f"must be a number {allowed}")
        number = float(value)
        inside = low < number < high if exclusive else low <= number <= high
        if inside:
            return number
        raise SettingError(f"must be {allowed}")

    return check


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in _BOOLEANS:
        return _BOOLEANS[value.lower()]
    raise SettingError("must be true or false")


def _choice(*choices: Any) -> Check:
    def check(value: Any) -> Any:
        # A number given on the command line (-e) arrives as text.
        if isinstance(value, str) and _INTEGER.fullmatch(value) and int(value) in choices:
            return int(value)
        if isinstance(value, bool) or value not in choices:
            raise SettingError("must be one of " + ", ".join(str(choice) for choice in choices))
        return value

    return check


def _address(value: Any, *, version: int | None = None) -> str:
    text = _text(value)
    try:
        # No zone id: ip_address() keeps whatever follows '%' ('::1%lo\n...').
        address = None if "%" in text else ipaddress.ip_address(text)
    except ValueError:
        address = None
    # The text must be exactly what was parsed (no white space, no zeros).
    if address is None or (version and address.version != version) or str(address) != text:
        raise SettingError(f"must be an IPv{version or '4 or IPv6'} address")
    return text


def _ipv4(value: Any) -> str:
    return _address(value, version=4)


def _ipv4_or_empty(value: Any) -> str:
    return "" if value == "" else _address(value, version=4)


def _name_or_address(version: int | None, allowed: str) -> Check:
    """Empty, a DNS name, or an IP address (of `version` when given)."""

    def check(value: Any) -> str:
        text = _text(value)
        if text == "" or _DNS_NAME.fullmatch(text):
            return text
        try:
            return _address(text, version=version)
        except SettingError:
            raise SettingError(f"must be {allowed}") from None

    return check


# A listener's bind address.
_host_or_empty = _name_or_address(None, "an IP address or a DNS name, or empty")
# WireGuard's Endpoint host: the template adds the port.
_endpoint_host = _name_or_address(
    4,
    "the hub's DNS name or IPv4 address (no port: pisec_wireguard_port is added), "
    "or empty for the hub's default address",
)


def _names(known: frozenset[str], what: str) -> Callable[[Iterable[Any]], list[str]]:
    def check(names: Iterable[Any]) -> list[str]:
        checked = [_text(name) for name in names]
        if not checked:
            raise SettingError(f"must name at least one {what}")
        for name in checked:
            if name not in known:
                raise SettingError(
                    f"{name!r} is not a {what} pisec accepts ({', '.join(sorted(known))})"
                )
        if len(set(checked)) != len(checked):
            raise SettingError(f"names a {what} twice")
        return checked

    return check


def _colon_list(known: frozenset[str], what: str) -> Check:
    names = _names(known, what)

    def check(value: Any) -> str:
        return ":".join(names(_text(value).split(":")))

    return check


def _list_of(item: Check, *, most: int = 1000) -> Check:
    def check(value: Any) -> list[Any]:
        if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
            raise SettingError("must be a list")
        items = list(value)
        if len(items) > most:
            raise SettingError(f"may hold at most {most} entries")
        checked = []
        for number, entry in enumerate(items, start=1):
            try:
                checked.append(item(entry))
            except SettingError as refused:
                raise SettingError(f"entry {number}: {refused}") from None
        return checked

    return check


def _group_list(value: Any) -> list[str]:
    if isinstance(value, str):
        raise SettingError("must be a list of group names such as [X25519, P-256]")
    return _names(TLS_GROUPS, "key-exchange group")(_list_of(_text)(value))


def _pq_group_list(value: Any) -> list[str]:
    if isinstance(value, str):
        raise SettingError("must be a list of group names such as [X25519MLKEM768], or []")
    names = _list_of(_text, most=len(TLS_PQ_GROUPS))(value)
    return _names(TLS_PQ_GROUPS, "post-quantum key-exchange group")(names) if names else []


def tls_groups(pq_groups: Sequence[str], groups: Sequence[str], offered: Any) -> list[str]:
    """The broker's key-exchange groups: each of pq_groups this Pi's OpenSSL
    offers, then groups.

    `offered` is what the Pi printed for `openssl list -tls1_3 -tls-groups`
    (OpenSSL 3.5 and later; empty where the option is unknown). It only
    selects among names the inventory gave, so a forged list can choose
    nothing else; anything but a plain list of names selects none.
    """
    text = offered.strip() if isinstance(offered, str) else ""
    listed = (
        {name.lower() for name in text.split(":")} if _OPENSSL_GROUPS.fullmatch(text) else set()
    )
    return [name for name in pq_groups if name.lower() in listed] + list(groups)


def chacha_first(order: str, cpu_features: Any) -> bool:
    """Whether the broker puts ChaCha20-Poly1305 before AES-GCM.

    `order` is pisec_mosquitto_tls_cipher_order, checked by SETTINGS: `aes`,
    `chacha20`, or `auto`, which puts ChaCha20 first exactly on a CPU without
    AES instructions, where it is several times faster (every Pi before the
    Pi 5). `cpu_features` is what the Pi reported from /proc/cpuinfo; only a
    well-formed feature list that lacks `aes` counts as such a CPU, so a
    forged or empty line keeps AES-GCM first. Either way the ciphers are the
    inventory's, only their order changes.
    """
    if order != "auto":
        return order == "chacha20"
    text = cpu_features.strip() if isinstance(cpu_features, str) else ""
    return _CPU_FEATURES.fullmatch(text) is not None and "aes" not in text.split(" ")


def mosquitto_plugins(support: Any) -> dict[str, str]:
    """The paths of mosquitto's password-file and ACL-file plugins where the
    Pi runs mosquitto 2.1 or later, which deprecates the `password_file` and
    `acl_file` options for them; {} elsewhere.

    `support` is what the Pi reported (pisec_mosquitto_support): its
    version and plugin directory. A version or directory that is not plainly
    one keeps the options, which 2.1 still reads; a forged report can only
    choose between those two forms of the same settings, and a path that
    reaches mosquitto.conf is one of Debian's library directories.
    """
    if not isinstance(support, Mapping):
        return {}
    version, directory = support.get("mosquitto_version"), support.get("plugin_dir")
    if not isinstance(version, str) or not isinstance(directory, str):
        return {}
    match = _MOSQUITTO_VERSION.fullmatch(version)
    if not match or (int(match[1]), int(match[2])) < (2, 1):
        return {}
    if not _MOSQUITTO_PLUGIN_DIR.fullmatch(directory):
        return {}
    return {
        "password_file": f"{directory}/mosquitto_password_file.so",
        "acl_file": f"{directory}/mosquitto_acl_file.so",
    }


def cipher_order(ciphers: str, chacha: bool) -> str:
    """A checked colon list of ciphers with the ChaCha20 ones first if `chacha`,
    each group in the inventory's order; unchanged otherwise."""
    if not chacha:
        return ciphers
    names = ciphers.split(":")
    first = [name for name in names if "CHACHA20" in name.upper()]
    return ":".join(first + [name for name in names if name not in first])


_PORT = _integer(1, 65535)
_LISTENER_KEYS = {
    "port": _PORT,
    "bind_address": _host_or_empty,
    "auth": _choice("password", "mtls"),
}


def _listener(value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise SettingError("must be a mapping with port, bind_address and auth")
    unknown = sorted(set(value) - set(_LISTENER_KEYS))
    if unknown:
        raise SettingError(
            f"has unknown key(s) {', '.join(map(str, unknown))} (port, bind_address, auth)"
        )
    if "port" not in value:
        raise SettingError("needs a port")
    checked = {"bind_address": "", "auth": "password"}
    for key, check in _LISTENER_KEYS.items():
        if key in value:
            try:
                checked[key] = check(value[key])
            except SettingError as refused:
                raise SettingError(f"{key} {refused}") from None
    return checked


def _listeners(value: Any) -> list[dict[str, Any]]:
    checked: list[dict[str, Any]] = _list_of(_listener, most=16)(value)
    if not checked:
        raise SettingError("must hold at least one listener")
    return checked


_PRINTABLE = re.compile(r"[^\x00-\x1f\x7f-\x9f]{1,64}")
_PRINTABLE_CN = re.compile(r"[^\x00-\x1f\x7f-\x9f]{1,60}")
_PATH_TEXT = "an absolute path of letters, digits and ._@+/- (no white space, quote, % or $)"

_GENERATION = re.compile(r"(g[0-9]{8}T[0-9]{6}Z-[0-9a-f]{4})?")

KINDS: dict[str, Check] = {
    "port": _PORT,
    "ipv4": _ipv4,
    "address": _address,
    "host_name": _matching(_HOST_NAME, "a host name of letters, digits and ._-"),
    "interface": _matching(_INTERFACE, "an interface name of up to 15 letters, digits and _.-"),
    "wireguard_key": _matching(_WIREGUARD_KEY, "a WireGuard key (44 characters of base64)"),
    # A certificate generation pisec_host_cert made (g<UTC time>-<random>), or none.
    "generation": _matching(
        _GENERATION, "empty or a generation name g<YYYYmmddTHHMMSSZ>-<4 hex digits>"
    ),
}

# Every setting the roles write into a file on a host or pass to a command,
# with its allow-list. Cross-setting rules (distinct ports, the VPN plan)
# stay in the roles' validate tasks.
SETTINGS: dict[str, Check] = {
    "inventory_hostname": KINDS["host_name"],
    # pisec_mosquitto
    "pisec_mosquitto_tls_listeners": _listeners,
    "pisec_mosquitto_plaintext_listener": _choice("loopback", "off"),
    "pisec_mosquitto_plaintext_port": _PORT,
    "pisec_mosquitto_transport": _choice("tls", "vpn", "vpn+tls"),
    "pisec_mosquitto_vpn_address": _ipv4_or_empty,
    "pisec_mosquitto_vpn_interface": KINDS["interface"],
    "pisec_mosquitto_vpn_port": _PORT,
    "pisec_mosquitto_vpn_firewall": _boolean,
    "pisec_mosquitto_tls_version": _choice("tlsv1.2", "tlsv1.3"),
    "pisec_mosquitto_tls12_ciphers": _colon_list(TLS12_CIPHERS, "TLS 1.2 cipher"),
    "pisec_mosquitto_tls13_ciphersuites": _colon_list(TLS13_CIPHERSUITES, "TLS 1.3 cipher suite"),
    "pisec_mosquitto_tls_groups": _group_list,
    "pisec_mosquitto_tls_pq_groups": _pq_group_list,
    "pisec_mosquitto_tls_cipher_order": _choice("auto", "aes", "chacha20"),
    "pisec_mosquitto_key_type": _choice("ecdsa", "rsa"),
    "pisec_mosquitto_key_curve": _choice("secp256r1", "secp384r1"),
    "pisec_mosquitto_key_size": _choice(2048, 3072, 4096),
    "pisec_mosquitto_cert_validity_days": _integer(1, 825),
    "pisec_mosquitto_client_id_is_identity": _boolean,
    "pisec_mosquitto_password_iterations": _integer(1000, 10_000_000),
    "pisec_mosquitto_password_min_length": _integer(8, 1024),
    "pisec_mosquitto_tcp_nodelay": _boolean,
    "pisec_mosquitto_max_connections": _integer(1, 1_000_000, also=-1),
    "pisec_mosquitto_max_packet_size": _integer(20, 268_435_455),
    "pisec_mosquitto_max_keepalive": _integer(10, 65535),
    "pisec_mosquitto_max_inflight_messages": _integer(1, 65535),
    "pisec_mosquitto_max_queued_messages": _integer(0, 100_000_000),
    "pisec_mosquitto_max_queued_bytes": _integer(0, 2**40),
    "pisec_mosquitto_persistent_client_expiration": _matching(
        _EXPIRY, "a duration such as 14d (1 to 6 digits, then h, d, w, m or y)"
    ),
    # pisec_wireguard
    "pisec_wireguard_address": _ipv4_or_empty,
    "pisec_wireguard_prefix": _integer(8, 30),
    "pisec_wireguard_hub": _matching(_HOST_NAME, "an inventory host name", empty=True),
    "pisec_wireguard_endpoint": _endpoint_host,
    "pisec_wireguard_port": _PORT,
    "pisec_wireguard_preshared_keys": _boolean,
    "pisec_wireguard_keepalive": _integer(0, 65535),
    "pisec_wireguard_interface": KINDS["interface"],
    # pisec_rotation_job
    "pisec_rotation_job_project_dir": _matching(_PATH, _PATH_TEXT),
    "pisec_rotation_job_inventory": _matching(_PATH, _PATH_TEXT),
    "pisec_rotation_job_ansible_playbook": _matching(_PATH, _PATH_TEXT),
    "pisec_rotation_job_vault_password_file": _matching(_PATH, _PATH_TEXT, empty=True),
    "pisec_rotation_job_extra_args": _list_of(
        _matching(_ARGUMENT, "an argument of letters, digits and ._@+/=:,- (no white space)"),
        most=64,
    ),
    "pisec_rotation_job_user": _matching(_USER, "a system user name such as root"),
    "pisec_rotation_job_on_calendar": _matching(
        _CALENDAR, "a systemd calendar expression such as daily or *-*-* 03:00"
    ),
    "pisec_rotation_job_randomized_delay_sec": _integer(0, 86400),
    "pisec_rotation_job_state": _choice("present", "absent"),
    # pisec_host_cert
    "pisec_host_cert_dir": _matching(_PATH, _PATH_TEXT),
    "pisec_host_cert_name": _matching(
        re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}"), "a file name of letters, digits and _.-"
    ),
    "pisec_host_cert_ca_path": _matching(_PATH, _PATH_TEXT),
    "pisec_host_cert_key_owner": _matching(_USER, "a user name"),
    "pisec_host_cert_key_group": _matching(_USER, "a group name"),
    "pisec_host_cert_key_mode": _choice("0400", "0600", "0440", "0640"),
    "pisec_host_cert_key_type": _choice("ecdsa", "rsa"),
    "pisec_host_cert_key_curve": _choice("secp256r1", "secp384r1"),
    "pisec_host_cert_key_size": _choice(2048, 3072, 4096),
    "pisec_host_cert_purpose": _choice("server", "client"),
    "pisec_host_cert_include_addresses": _boolean,
    "pisec_host_cert_validity_days": _integer(1, 825),
    "pisec_host_cert_renew_fraction_left": _decimal(0, 1, exclusive=True),
    "pisec_host_cert_renewal_jitter": _decimal(0, 0.5),
    "pisec_host_cert_force_renewal": _boolean,
    "pisec_host_cert_new_key_on_renewal": _boolean,
    "pisec_host_cert_confirm_swap": _boolean,
    "pisec_host_cert_hold_at": _choice("", "written", "switched", "reloaded"),
    "pisec_host_cert_reload_services": _list_of(_matching(_UNIT, "a systemd unit name"), most=32),
    "pisec_host_cert_restart_services": _list_of(_matching(_UNIT, "a systemd unit name"), most=32),
    "pisec_host_cert_extra_packages": _list_of(
        _matching(_PACKAGE, "a Debian package name"), most=64
    ),
    # pisec_coaps (on brokers, and device Pis for their key)
    "pisec_coaps_enabled": _boolean,
    "pisec_coaps_port": _PORT,
    "pisec_coaps_listen": _list_of(_address, most=16),
    "pisec_coaps_allow_ccm": _boolean,
    "pisec_coaps_max_payload": _integer(1, 65000),
    "pisec_coaps_max_sessions": _integer(1, 10000),
    "pisec_coaps_max_handshakes": _integer(1, 1000),
    "pisec_coaps_session_timeout": _integer(10, 86400),
    "pisec_coaps_broker_port": _PORT,
    "pisec_coaps_packages": _list_of(_matching(_PACKAGE, "a Debian package name"), most=64),
    "pisec_coaps_device_packages": _list_of(_matching(_PACKAGE, "a Debian package name"), most=64),
    "pisec_coaps_device_dir": _matching(_PATH, _PATH_TEXT),
    # pisec_mqtt_client
    "pisec_mqtt_client_packages": _list_of(_matching(_PACKAGE, "a Debian package name"), most=64),
    "pisec_mqtt_client_ca_path": _matching(_PATH, _PATH_TEXT),
    "pisec_mqtt_client_cert_dir": _matching(_PATH, _PATH_TEXT),
    "pisec_mqtt_client_key_owner": _matching(_USER, "a user name"),
    "pisec_mqtt_client_key_group": _matching(_USER, "a group name"),
    "pisec_mqtt_client_key_mode": _choice("0400", "0600", "0440", "0640"),
    # pisec_ca (on the CA host: subject text goes into certificates)
    "pisec_ca_key_type": _choice("ecdsa", "rsa"),
    "pisec_ca_device_key_type": _choice("ecdsa", "rsa"),
    "pisec_ca_device_validity_days": _integer(1, 825),
    "pisec_ca_key_curve": _choice("secp256r1", "secp384r1"),
    "pisec_ca_key_size": _choice(2048, 3072, 4096),
    # A rollover appends " G<n>"; a CN may hold 64 characters.
    "pisec_ca_common_name": _matching(_PRINTABLE_CN, "1 to 60 printable characters"),
    "pisec_ca_organization": _matching(_PRINTABLE, "1 to 64 printable characters"),
    "pisec_ca_validity_days": _integer(1, 7300),
    "pisec_ca_max_leaf_validity_days": _integer(1, 825),
    "pisec_ca_min_rsa_key_size": _choice(2048, 3072, 4096),
    "pisec_ca_sign_not_before": _matching(_NOT_BEFORE, "a time before now such as -10m or -5d"),
    "pisec_ca_crl_validity_days": _integer(2, 365),
    "pisec_ca_crl_renew_before_days": _integer(1, 364),
    "pisec_ca_crl_force": _boolean,
}


def _shown(value: Any) -> str:
    try:
        text = json.dumps(value, ensure_ascii=True, default=repr)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def check_settings(
    values: Mapping[str, Any], host: str, only_known: bool = False
) -> dict[str, Any]:
    """Every setting checked against its allow-list; all problems at once.

    Returns the normalised values. Raises naming the host and each variable
    that is refused, with the value shown escaped (a newline as \\n). A name
    without an allow-list is an error, or with `only_known` left out (the
    preflight passes a role's every option; some have checks of their own).
    """
    checked: dict[str, Any] = {}
    problems: list[str] = []
    for variable, value in values.items():
        check = SETTINGS.get(variable)
        if check is None:
            if only_known:
                continue
            raise AnsibleFilterError(f"pisec_check_settings: no allow-list for {variable}")
        try:
            checked[variable] = check(value)
        except SettingError as refused:
            problems.append(f"{variable} {refused} (is {_shown(value)})")
    if problems:
        shown = host if _HOST_NAME.fullmatch(host) else _shown(host)
        raise AnsibleFilterError(f"{shown}: " + "; ".join(problems) + ". Nothing was changed.")
    return checked


def check_value(value: Any, kind: str, what: str) -> Any:
    """One value of a kind in KINDS, such as what a Pi reports; `what` names it."""
    try:
        return KINDS[kind](value)
    except SettingError as refused:
        raise AnsibleFilterError(f"{what} {refused} (is {_shown(value)})") from None


class FilterModule:
    """pisec filters: allow-lists for settings and reported values."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {
            "pisec_check_settings": check_settings,
            "pisec_check_value": check_value,
            "pisec_tls_groups": tls_groups,
            "pisec_tls_chacha_first": chacha_first,
            "pisec_tls_cipher_order": cipher_order,
            "pisec_mosquitto_plugins": mosquitto_plugins,
        }
