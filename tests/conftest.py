"""Fixtures: certificates built with cryptography, and a real mosquitto on loopback."""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.machinery
import importlib.util
import ipaddress
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from paho.mqtt.enums import CallbackAPIVersion

from tests.certs import Pair, build, name

PROJECT = Path(__file__).resolve().parent.parent


def _load_path(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


class _RoleModuleUtils(importlib.abc.MetaPathFinder):
    """Finds `ansible.module_utils.<name>` in plugins/module_utils/ (ansible.cfg's
    module_utils) or a role's module_utils/, as Ansible does for the modules
    it runs."""

    def find_spec(
        self, fullname: str, path: object = None, target: object = None
    ) -> importlib.machinery.ModuleSpec | None:
        prefix = "ansible.module_utils."
        name = fullname.removeprefix(prefix)
        if name == fullname or "." in name:
            return None
        for candidate in sorted(PROJECT.glob(f"plugins/module_utils/{name}.py")) + sorted(
            PROJECT.glob(f"roles/*/module_utils/{name}.py")
        ):
            return importlib.util.spec_from_file_location(fullname, candidate)
        return None


sys.meta_path.append(_RoleModuleUtils())


def load_module_utils(name: str) -> ModuleType:
    """A file of plugins/module_utils, imported as Ansible imports it."""
    module = importlib.import_module(f"ansible.module_utils.{name}")
    assert Path(str(module.__file__)).parent == PROJECT / "plugins" / "module_utils"
    return module


def load_role_module(role: str, name: str) -> ModuleType:
    """A module that ships inside a role's library/; import it by path."""
    return _load_path(name, PROJECT / "roles" / role / "library" / f"{name}.py")


def load_plugin_module(name: str) -> ModuleType:
    """A module of plugins/modules (ansible.cfg's library: the CA's modules,
    which more than one role runs); import it by path."""
    return _load_path(name, PROJECT / "plugins" / "modules" / f"{name}.py")


def load_passwd_module() -> ModuleType:
    """The password-file module of pisec_mosquitto."""
    return load_role_module("pisec_mosquitto", "pisec_mosquitto_passwd")


# One certificate factory for every test (tests/certs.py: build); these
# are the profiles the CA tests use, an ECDSA P-256 CA and leaf.
Issued = Pair


def make_ca(common_name: str) -> Issued:
    now = datetime.now(UTC)
    return build(
        name(common_name),
        ec.generate_private_key(ec.SECP256R1()),
        ca=True,
        path_length=0,
        not_before=now - timedelta(minutes=5),
        not_after=now + timedelta(days=30),
    )


def make_leaf(
    ca: Issued,
    common_name: str,
    purpose: x509.ObjectIdentifier,
    sans: list[x509.GeneralName] | None = None,
) -> Issued:
    now = datetime.now(UTC)
    return build(
        name(common_name),
        ec.generate_private_key(ec.SECP256R1()),
        issuer=ca,
        sans=sans,
        eku=[purpose],
        not_before=now - timedelta(minutes=5),
        not_after=now + timedelta(days=10),
    )


def key_usage(**set_bits: bool) -> x509.KeyUsage:
    """A KeyUsage with the named bits set, all others clear."""
    bits = dict.fromkeys(
        (
            "digital_signature",
            "content_commitment",
            "key_encipherment",
            "data_encipherment",
            "key_agreement",
            "key_cert_sign",
            "crl_sign",
            "encipher_only",
            "decipher_only",
        ),
        False,
    )
    bits.update(set_bits)
    return x509.KeyUsage(**bits)


def make_csr(
    key: Any,
    common_name: str | None,
    *,
    sans: list[x509.GeneralName] | None = None,
    purposes: list[x509.ObjectIdentifier] | None = None,
    ca: bool | None = None,
    usage: x509.KeyUsage | None = None,
    extensions: tuple[x509.ExtensionType, ...] = (),
) -> x509.CertificateSigningRequest:
    """A CSR as a host (honest or not) could send it, signed with `key`."""
    names = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)] if common_name else []
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(names))
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    if purposes:
        builder = builder.add_extension(x509.ExtendedKeyUsage(purposes), critical=False)
    if ca is not None:
        builder = builder.add_extension(
            x509.BasicConstraints(ca=ca, path_length=None), critical=True
        )
    if usage is not None:
        builder = builder.add_extension(usage, critical=True)
    for extension in extensions:
        builder = builder.add_extension(extension, critical=False)
    return builder.sign(key, hashes.SHA256())


def csr_pem(csr: x509.CertificateSigningRequest) -> str:
    return csr.public_bytes(serialization.Encoding.PEM).decode("ascii")


def write_pem(path: Path, issued: Issued, *, key: bool = False) -> Path:
    if key:
        path.write_bytes(
            issued.key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        path.chmod(0o600)
    else:
        path.write_bytes(issued.certificate.public_bytes(serialization.Encoding.PEM))
    return path


CA_PASSPHRASE = "a CA passphrase for tests"


def write_ca_dir(path: Path, ca: Issued | None = None, name: str = "pisec fleet CA") -> Issued:
    """A CA generation directory as pisec_ca lays it out: ca.crt, ca.key
    (PKCS#8, encrypted with CA_PASSPHRASE, 0600) and an empty issued/."""
    ca = ca or make_ca(name)
    path.mkdir(mode=0o700, parents=True)
    (path / "issued").mkdir(mode=0o700)
    (path / "ca.crt").write_bytes(ca.certificate.public_bytes(serialization.Encoding.PEM))
    (path / "ca.key").write_bytes(
        ca.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(CA_PASSPHRASE.encode()),
        )
    )
    (path / "ca.key").chmod(0o600)
    return ca


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class Broker:
    port: int
    ca_file: Path
    rogue_ca_file: Path
    server: Issued
    username: str
    password: str
    mtls_port: int
    client_cert: Path
    client_key: Path

    @property
    def url(self) -> str:
        return f"mqtts://localhost:{self.port}"


@contextlib.contextmanager
def running_mosquitto(config: Path, port: int, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """mosquitto with this configuration, until the block ends; waits for `port`."""
    mosquitto = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(mosquitto).exists():
        pytest.fail("mosquitto is not installed: run `make deps`")
    process = subprocess.Popen(
        [mosquitto, "-c", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(
                        f"mosquitto did not start: {log.read_text() if log.exists() else ''}"
                    )
                time.sleep(0.05)
        yield process
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """mosquitto 2.0 with the settings the role writes, on 127.0.0.1 only."""
    with started_broker(tmp_path_factory.mktemp("broker")) as running:
        yield running


@pytest.fixture
def fresh_broker(tmp_path: Path) -> Iterator[Broker]:
    """The same broker, started for one test."""
    with started_broker(tmp_path) as running:
        yield running


@contextlib.contextmanager
def started_broker(workdir: Path) -> Iterator[Broker]:
    ca = make_ca("pisec test CA")
    rogue = make_ca("someone else's CA")
    server = make_leaf(
        ca,
        "localhost",
        ExtendedKeyUsageOID.SERVER_AUTH,
        [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("::1"))],
    )
    client = make_leaf(ca, "sensor-01", ExtendedKeyUsageOID.CLIENT_AUTH)
    client_cert = write_pem(workdir / "client.crt", client)
    client_key = write_pem(workdir / "client.key", client, key=True)
    ca_file = write_pem(workdir / "ca.crt", ca)
    rogue_ca_file = write_pem(workdir / "rogue-ca.crt", rogue)
    write_pem(workdir / "server.crt", server)
    write_pem(workdir / "server.key", server, key=True)
    passwd = load_passwd_module()
    password = "correct horse battery staple"
    hashed = passwd.Pbkdf2Hash.new(password, 1000).render()
    (workdir / "passwd").write_text(f"probe-user:{hashed}\n")
    # What pisec deploys: a private probe tree per identity, the probe
    # identity's read of the dropped-messages counter, and a client's id
    # replaced by its identity on every listener.
    (workdir / "acl").write_text(
        "pattern readwrite pisec/probe/%u/#\n"
        "user probe-user\ntopic read $SYS/broker/publish/messages/dropped\n"
    )
    port = free_port()
    mtls_port = free_port()
    (workdir / "mosquitto.conf").write_text(
        f"""user root
per_listener_settings false
allow_anonymous false
password_file {workdir}/passwd
acl_file {workdir}/acl
log_dest file {workdir}/mosquitto.log
# $SYS within a second of the start (mosquitto's default is 10 s): until
# its first update the dropped-messages counter has no value to read.
sys_interval 1
listener {port} 127.0.0.1
cafile {ca_file}
certfile {workdir}/server.crt
keyfile {workdir}/server.key
tls_version tlsv1.2
use_username_as_clientid true
listener {mtls_port} 127.0.0.1
cafile {ca_file}
certfile {workdir}/server.crt
keyfile {workdir}/server.key
tls_version tlsv1.2
require_certificate true
use_identity_as_username true
use_username_as_clientid true
"""
    )
    with running_mosquitto(workdir / "mosquitto.conf", port, workdir / "mosquitto.log"):
        yield Broker(
            port,
            ca_file,
            rogue_ca_file,
            server,
            "probe-user",
            password,
            mtls_port,
            client_cert,
            client_key,
        )


BENCH_USER = "bench-user"
BENCH_PASSWORD = "bench password"


@dataclass(frozen=True)
class BenchBrokerFiles:
    """A broker for the bench code: a listener without TLS and one with, sharing
    users and an ACL that lets bench-user use pisec/bench/# (the session
    broker's ACL allows only a client's own tree)."""

    config: Path
    log: Path
    plain_port: int
    tls_port: int
    password_file: Path
    passwd: Path  # mosquitto's password_file


def write_bench_broker(broker: Broker, workdir: Path) -> BenchBrokerFiles:
    passwd = load_passwd_module()
    hashed = passwd.Pbkdf2Hash.new(BENCH_PASSWORD, 1000).render()
    (workdir / "passwd").write_text(f"{BENCH_USER}:{hashed}\n")
    (workdir / "acl").write_text(f"user {BENCH_USER}\ntopic readwrite pisec/bench/#\n")
    password_file = workdir / "password"
    password_file.write_text(f"{BENCH_PASSWORD}\n")
    plain_port, tls_port = free_port(), free_port()
    log = workdir / "mosquitto.log"
    certs = broker.ca_file.parent
    config = workdir / "mosquitto.conf"
    config.write_text(
        f"user root\nper_listener_settings false\nallow_anonymous false\n"
        f"password_file {workdir}/passwd\nacl_file {workdir}/acl\nlog_dest file {log}\n"
        f"listener {plain_port} 127.0.0.1\n"
        f"listener {tls_port} 127.0.0.1\ncafile {broker.ca_file}\n"
        f"certfile {certs}/server.crt\nkeyfile {certs}/server.key\ntls_version tlsv1.2\n"
    )
    return BenchBrokerFiles(config, log, plain_port, tls_port, password_file, workdir / "passwd")


# ---- A plain broker on loopback, as the CoAPs gateway's (tests/test_coaps_*) ----

DEVICE_PASSWORD = b"a device password of the gateway"


@dataclass
class PlainBroker:
    port: int  # plain MQTT on 127.0.0.1, as the gateway's loopback listener
    tls_port: int  # the same broker over TLS, for subscribers that prove delivery
    ca_file: Path
    log: Path


@pytest.fixture(scope="session")
def plain_broker(broker: Broker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlainBroker]:
    """mosquitto on 127.0.0.1 with passwords and an ACL: a plain listener, as
    the gateway's loopback one is, and a TLS one with the session broker's
    certificates."""
    workdir = tmp_path_factory.mktemp("mqtt5-broker")
    passwd = load_passwd_module()
    (workdir / "passwd").write_text(
        "".join(
            f"{user}:{passwd.Pbkdf2Hash.new(DEVICE_PASSWORD.decode(), 1000).render()}\n"
            for user in ("dev1", "dev2", "reader")
        )
    )
    (workdir / "acl").write_text(
        "user dev1\ntopic write devices/dev1/#\ntopic write pisec/probe/dev1/#\n\n"
        "user dev2\ntopic write devices/dev2/#\n\n"
        "user reader\ntopic read devices/#\ntopic read pisec/probe/#\n"
    )
    port, tls_port = free_port(), free_port()
    log = workdir / "mosquitto.log"
    certs = broker.ca_file.parent
    (workdir / "mosquitto.conf").write_text(
        f"user root\nlog_dest file {log}\nlog_type all\n"
        "per_listener_settings false\nallow_anonymous false\n"
        f"password_file {workdir}/passwd\nacl_file {workdir}/acl\n"
        f"listener {port} 127.0.0.1\nuse_username_as_clientid true\n"
        f"listener {tls_port} 127.0.0.1\nuse_username_as_clientid true\n"
        f"cafile {broker.ca_file}\ncertfile {certs}/server.crt\nkeyfile {certs}/server.key\n"
    )
    with running_mosquitto(workdir / "mosquitto.conf", port, log):
        yield PlainBroker(port, tls_port, broker.ca_file, log)


class Subscriber:
    """A paho MQTT subscriber that collects what arrives on one filter."""

    def __init__(self, port: int, topic_filter: str) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self.arrived = threading.Event()
        subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="reader")
        self.client.username_pw_set("reader", DEVICE_PASSWORD.decode())
        self.client.on_subscribe = lambda *_: subscribed.set()

        def on_message(_client: object, _userdata: object, message: mqtt.MQTTMessage) -> None:
            self.messages.append((message.topic, bytes(message.payload)))
            self.arrived.set()

        self.client.on_message = on_message
        self.client.connect("127.0.0.1", port)
        self.client.subscribe(topic_filter, qos=1)
        self.client.loop_start()
        assert subscribed.wait(5)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()
