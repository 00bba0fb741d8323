"""`make bench`: what pisec's security costs, measured on simulated Pis.

Everything runs against the project's own containers (Debian trixie or
bookworm with systemd, PISEC_SUITE, as in the Molecule scenarios), provisioned by the project's own
playbooks:

1. The broker: connect latency and broker CPU per connection, publish
   throughput and resident memory, for plaintext (a listener the bench adds
   for the baseline only; pisec never offers one), TLS with an ECDSA P-256
   and an RSA-2048 server certificate, mutual TLS with each, TLS inside
   WireGuard (transport vpn+tls), and plain MQTT inside WireGuard (the
   baseline listener reached through the tunnel: the data path of
   transport vpn). Every set-up measures the plaintext baseline again,
   interleaved with its own endpoints round by round, and its ratios are
   to that baseline: a shared VM's speed drifts within minutes.
2. The fleet: wall time of playbooks/site.yml for 1, 5 and 20 Pis, first
   and second run, next to the floor (ping plus fact gathering). With
   --ansible-settings (`make bench-ansible`), the second run again with each
   Ansible setting of SETTINGS.

Results go to docs/benchmarks.json and the generated part of
docs/benchmarks.md. Every load is bounded in count and time.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import json
import os
import platform
import re
import secrets
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bench import report as benchreport
from bench.coap import bench_coap
from bench.core import (
    LABEL,
    BenchError,
    BrokerBench,
    Counts,
    Credentials,
    Endpoint,
    Running,
    RunningProcess,
    Usage,
    bulk_phase,
    loadgen_report,
    log,
    mosquitto_password_hash,
    parse_usage,
)

NETWORK = "pisec-bench"
VPN_HUB = "10.88.0.1"
VPN_CLIENT = "10.88.0.11"
BENCH_USER = "pisec-bench"
HELD_USER = "pisec-bench-held"  # the memory step's clients
HELD_ITERATIONS = 1000
PLAINTEXT_PORT = 1884  # the baseline listener, added by the bench only
LOADGEN = "/root/pisec-loadgen.py"
CLIENT_TLS = "/etc/pisec/tls"
# OpenSSL's x86 capability mask that hides the AES instructions: AES-NI and
# PCLMULQDQ (bits 57 and 33 of the first word) and VAES and VPCLMULQDQ
# (bits 41 and 42 of the second, which OpenSSL 3.5 uses without AES-NI's
# bit), keeping everything else (AVX2 and AVX-512, which ChaCha20 uses;
# without a second word OpenSSL would drop them all). This machine's
# stand-in for a Pi 4's Cortex-A72, which has no AES instructions. Set in
# mosquitto's environment only; _openssl_speed shows it takes effect.
NO_AES_MASK = "~0x200000200000000:~0x60000000000"
# At least this much slower AES-GCM under the mask, or the mask hid nothing.
NO_AES_SLOWDOWN = 3.0
SPEED_CIPHERS = ("aes-128-gcm", "chacha20-poly1305")
NO_AES_DROP_IN = "/etc/systemd/system/mosquitto.service.d/zz-pisec-bench-no-aes.conf"


def run(
    argv: Sequence[str],
    *,
    timeout: float = 600,
    env: dict[str, str] | None = None,
    check: bool = True,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    try:
        done = subprocess.run(
            list(argv),
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            check=False,
            cwd=cwd,
        )
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"{shlex.join(argv)[:200]}: no answer within {timeout:.0f} s") from exc
    if check and done.returncode != 0:
        tail = (done.stdout + done.stderr).strip().splitlines()[-25:]
        raise BenchError(f"{shlex.join(argv)[:200]}: exit {done.returncode}\n" + "\n".join(tail))
    return done


def stream(argv: Sequence[str], *, env: dict[str, str], timeout: float, cwd: Path) -> str:
    """Run a playbook, showing each play as it starts; return its output."""
    started = time.monotonic()
    lines: list[str] = []
    with subprocess.Popen(
        list(argv),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=cwd,
    ) as process:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            if line.startswith("PLAY [") and "RECAP" not in line:
                play = line.removeprefix("PLAY [").split("]", 1)[0]
                print(
                    f"    {time.monotonic() - started:5.0f} s  {play}", file=sys.stderr, flush=True
                )
            if time.monotonic() - started > timeout:
                process.kill()
                raise BenchError(f"{shlex.join(argv)[:200]}: not done within {timeout:.0f} s")
        code = process.wait()
    if code != 0:
        tail = "".join(lines[-30:])
        raise BenchError(f"{shlex.join(argv)[:200]}: exit {code}\n{tail}")
    return "".join(lines)


# ---- Containers -------------------------------------------------------------


@dataclass(frozen=True)
class Docker:
    binary: str

    @classmethod
    def find(cls) -> Docker:
        binary = (
            "/usr/bin/docker" if os.access("/usr/bin/docker", os.X_OK) else shutil.which("docker")
        )
        if not binary:
            raise BenchError("docker: not installed (run `make deps`)")
        return cls(binary)

    def __call__(self, *args: str, timeout: float = 300, check: bool = True) -> str:
        return run([self.binary, *args], timeout=timeout, check=check).stdout

    def start_pis(self, image: str, names: Sequence[str]) -> None:
        """Start systemd containers (as Molecule does) and wait for their boot."""
        running = len(self("ps", "-q").split())
        ensure_inotify_instances(len(names) + running)
        if not self("network", "ls", "-q", "--filter", f"name=^{NETWORK}$").strip():
            self("network", "create", "--label", LABEL, NETWORK)
        for name in names:
            self("rm", "-f", name, check=False)
            self(
                "run",
                "-d",
                "--name",
                name,
                "--hostname",
                name,
                "--network",
                NETWORK,
                "--label",
                LABEL,
                "--cap-add",
                "SYS_ADMIN",
                "--cap-add",
                "NET_ADMIN",
                "--device",
                "/dev/net/tun:/dev/net/tun",
                "--tmpfs",
                "/run",
                "--tmpfs",
                "/run/lock",
                "-v",
                "/sys/fs/cgroup:/sys/fs/cgroup:ro",
                "--stop-signal",
                "SIGRTMIN+3",
                image,
                "/sbin/init",
            )
        for name in names:
            state = ""
            for _ in range(90):
                state = self("exec", name, "systemctl", "is-system-running", check=False).strip()
                if state in ("running", "degraded"):
                    break
                time.sleep(1)
            else:
                jobs = self("exec", name, "systemctl", "list-jobs", "--no-legend", check=False)
                raise BenchError(
                    f"{name}: systemd did not boot within 90 s (state {state!r}); "
                    f"waiting: {jobs.strip()[:300] or 'nothing'}"
                )

    def remove_all(self) -> None:
        names = self("ps", "-aq", "--filter", f"label={LABEL}").split()
        if names:
            self("rm", "-f", *names, timeout=600)
        self("network", "rm", NETWORK, check=False)


INOTIFY_INSTANCES = Path("/proc/sys/fs/inotify/max_user_instances")
# systemd, journald and logind of one container hold about half a dozen
# inotify instances, all counted against root on the host.
INOTIFY_PER_PI = 12


def ensure_inotify_instances(pis: int) -> None:
    """Raise fs.inotify.max_user_instances (128 by default) for `pis` Pis at once.

    Without it, the twentieth systemd container never finishes booting.
    """
    current = int(INOTIFY_INSTANCES.read_text(encoding="utf-8"))
    needed = 128 + INOTIFY_PER_PI * pis
    if current >= needed:
        return
    log(f"raising fs.inotify.max_user_instances from {current} to {needed} for {pis} Pis")
    try:
        INOTIFY_INSTANCES.write_text(f"{needed}\n", encoding="utf-8")
    except OSError as exc:
        raise BenchError(
            f"{INOTIFY_INSTANCES}: {current} is too low for {pis} systemd containers and "
            f"cannot be raised ({exc.strerror}); run `sysctl fs.inotify.max_user_instances="
            f"{needed}` as root"
        ) from exc


class ContainerBroker:
    def __init__(self, docker: Docker, name: str) -> None:
        self.docker = docker
        self.name = name
        self.ticks = int(docker("exec", name, "getconf", "CLK_TCK").strip())

    def usage(self, process: str) -> Usage:
        script = (
            f'p=$(pidof -s {shlex.quote(process)}) || {{ echo "no {process}" >&2; exit 3; }}; '
            'echo "$p"; cat /proc/$p/stat; echo ---; cat /proc/$p/status'
        )
        out = self.docker("exec", self.name, "sh", "-c", script)
        head, status = out.split("\n---\n", 1)
        pid_line, stat = head.split("\n", 1)
        return parse_usage(int(pid_line), stat, status, self.ticks)

    def restart(self) -> None:
        self.docker("exec", self.name, "systemctl", "restart", "mosquitto")
        self.docker(
            "exec",
            self.name,
            "sh",
            "-c",
            "for i in $(seq 50); do ss -Hltn | grep -q ':8883 \\|:1883 ' && exit 0; "
            "sleep 0.2; done; exit 1",
        )


class ContainerClient:
    def __init__(self, docker: Docker, name: str, loadgen: Path) -> None:
        self.docker = docker
        self.name = name
        docker("cp", str(loadgen), f"{name}:{LOADGEN}")

    def _argv(self, args: Sequence[str]) -> list[str]:
        return [self.docker.binary, "exec", self.name, "python3", LOADGEN, *args]

    def loadgen(self, args: Sequence[str], timeout: float) -> dict[str, Any]:
        done = run(self._argv(args), timeout=timeout, check=False)
        return loadgen_report(
            f"{self.name}: loadgen {args[0]}", done.returncode, done.stdout, done.stderr
        )

    def start_loadgen(self, args: Sequence[str]) -> Running:
        process = subprocess.Popen(
            self._argv(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        return RunningProcess(process, f"{self.name}: loadgen {args[0]}")

    def exists(self, path: str) -> bool:
        return (
            run([self.docker.binary, "exec", self.name, "test", "-e", path], check=False).returncode
            == 0
        )

    def touch(self, path: str) -> None:
        self.docker("exec", self.name, "touch", path)

    def scratch(self, name: str) -> str:
        return f"/run/pisec-bench-{name}"


# ---- Ansible ------------------------------------------------------------------


@dataclass
class Project:
    root: Path
    state: Path
    venv_bin: Path
    # Each host's recap of the last playbook run.
    last_recap: dict[str, dict[str, int]] = field(default_factory=dict)

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "ANSIBLE_CONFIG": str(self.root / "ansible.cfg"),
                "ANSIBLE_NOCOLOR": "1",
                "ANSIBLE_FORCE_COLOR": "0",
                # Line by line, so that progress shows as plays start.
                "PYTHONUNBUFFERED": "1",
                "PATH": f"{self.venv_bin}:{env.get('PATH', '')}",
            }
        )
        # Real fleets run over SSH with pipelining (ansible.cfg). The bench's
        # Pis are reached with docker exec, for which ansible.cfg leaves it
        # off; turning it on makes the timings those of the SSH set-up.
        env["ANSIBLE_PIPELINING"] = "True"
        env.update(extra or {})
        return env

    def inventory(
        self, name: str, broker: str, clients: Sequence[str], vpn: bool, coaps: bool = False
    ) -> Path:
        """An inventory of containers reached with `docker exec`, CA on this host;
        with `coaps`, the CoAPs gateway on and every client Pi a CoAPs device."""
        directory = self.state / name
        directory.mkdir(parents=True, exist_ok=True)
        acl = [{"topic": "pisec/bench/#", "access": "readwrite"}]
        broker_vars: dict[str, Any] = {"pisec_wireguard_address": VPN_HUB} if vpn else {}
        client_vars: dict[str, Any] = {}
        for index, client in enumerate(clients):
            client_vars[client] = (
                {"pisec_wireguard_address": f"10.88.0.{11 + index}"} if vpn else {}
            )
        inventory = {
            "all": {
                "vars": {
                    "pisec_ca_dir": str(directory / "ca"),
                    "pisec_ca_passphrase_required": False,
                    "pisec_mosquitto_credentials_dir": str(directory / "credentials"),
                    "pisec_mosquitto_users": [{"name": BENCH_USER, "acl": acl}],
                    "pisec_fleet_devices": [
                        {"name": client, "acl": acl, **({"coaps": True} if coaps else {})}
                        for client in clients
                    ],
                    "pisec_coaps_enabled": coaps,
                    # The bench holds 1,000 connections under one identity and
                    # runs a publisher and a subscriber under one certificate;
                    # a fleet's brokers take the client id from the identity,
                    # which costs one string copy per CONNECT.
                    "pisec_mosquitto_client_id_is_identity": False,
                    # The CA lives on this host only while the bench runs.
                    "pisec_rotation_job_state": "absent",
                },
                "children": {
                    "pisec_ca": {
                        "hosts": {
                            "localhost": {
                                "ansible_connection": "local",
                                "ansible_python_interpreter": "{{ ansible_playbook_python }}",
                            }
                        }
                    },
                    "pisec_brokers": {"hosts": {broker: broker_vars}},
                    "pisec_clients": {"hosts": client_vars},
                    "pisec_pis": {
                        "children": {"pisec_brokers": {}, "pisec_clients": {}},
                        "vars": {
                            "ansible_connection": "community.docker.docker",
                            "ansible_python_interpreter": "/usr/bin/python3",
                        },
                    },
                },
            }
        }
        path = directory / "hosts.yml"
        path.write_text(yaml.safe_dump(inventory, sort_keys=False), encoding="utf-8")
        return path

    def playbook(
        self,
        inventory: Path,
        playbook: str,
        *extra: str,
        env: dict[str, str] | None = None,
        timeout: float = 1200,
    ) -> tuple[float, dict[str, int]]:
        """Run a playbook; return its wall time and the recap's totals."""
        argv = [
            str(self.venv_bin / "ansible-playbook"),
            "-i",
            str(inventory),
            str(self.root / "playbooks" / playbook),
            *extra,
        ]
        started = time.monotonic()
        output = stream(argv, env=self.env(env), timeout=timeout, cwd=self.root)
        self.last_recap = recap_hosts(output)
        return time.monotonic() - started, recap_totals(output)

    def adhoc(self, inventory: Path, module: str, *args: str, timeout: float = 600) -> float:
        argv = [str(self.venv_bin / "ansible"), "-i", str(inventory), "pisec_pis", "-m", module]
        started = time.monotonic()
        run([*argv, *args], env=self.env(), timeout=timeout, cwd=self.root)
        return time.monotonic() - started


def recap_hosts(output: str) -> dict[str, dict[str, int]]:
    """Each host's PLAY RECAP line: ok, changed, failed, unreachable ..."""
    hosts: dict[str, dict[str, int]] = {}
    for line in output.splitlines():
        if " : ok=" not in line:
            continue
        host, counts = line.split(" : ", 1)
        hosts[host.strip()] = {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", counts)}
    if not hosts:
        raise BenchError("ansible-playbook printed no PLAY RECAP")
    return hosts


def recap_totals(output: str) -> dict[str, int]:
    """Sum every PLAY RECAP line: ok, changed, failed, unreachable ..."""
    totals: dict[str, int] = {}
    for counts in recap_hosts(output).values():
        for key, value in counts.items():
            totals[key] = totals.get(key, 0) + value
    return totals


def tasks_run(counts: dict[str, int]) -> int:
    """Tasks a host executed (skipped ones are not): ok, changed and failed."""
    return counts.get("ok", 0) + counts.get("changed", 0) + counts.get("failed", 0)


# ---- Part 1: the broker ---------------------------------------------------------

# One measurement: its title for the progress line, and what makes it.
Step = tuple[str, Callable[[], object]]


def bench_broker(docker: Docker, project: Project, image: str, counts: Counts) -> dict[str, Any]:
    broker_name, client_name = "pisec-bench-broker", "pisec-bench-client"
    log("broker: starting a broker Pi and a client Pi")
    docker.start_pis(image, [broker_name, client_name])
    inventory = project.inventory("broker", broker_name, [client_name], vpn=True)
    log("broker: provisioning with playbooks/site.yml (TLS, ECDSA P-256, WireGuard up)")
    project.playbook(inventory, "site.yml")

    # The baseline: a plaintext listener on the network, for this measurement
    # only. Same password file and ACL (per_listener_settings false).
    docker(
        "exec",
        broker_name,
        "sh",
        "-c",
        f"printf 'listener {PLAINTEXT_PORT}\\nprotocol mqtt\\n' "
        "> /etc/mosquitto/conf.d/zz-pisec-bench.conf",
    )
    # The memory step's user, with a cheap hash (see BrokerBench.held_creds),
    # also for this measurement only: the next broker.yml run removes it.
    held_password = secrets.token_urlsafe(24)
    held_line = f"{HELD_USER}:{mosquitto_password_hash(held_password, HELD_ITERATIONS)}"
    docker(
        "exec",
        broker_name,
        "sh",
        "-c",
        f"printf '%s\\n' {shlex.quote(held_line)} >> /etc/mosquitto/pisec/passwd",
    )
    broker = ContainerBroker(docker, broker_name)
    broker.restart()
    password = project.state / "broker" / "credentials" / BENCH_USER
    docker("cp", str(password), f"{client_name}:/root/pisec-bench-password")
    held_file = project.state / "broker" / "held-password"
    held_file.write_text(held_password + "\n", encoding="utf-8")
    docker("cp", str(held_file), f"{client_name}:/root/pisec-bench-held-password")
    client = ContainerClient(docker, client_name, Path(__file__).with_name("loadgen.py"))
    creds = Credentials(
        username=BENCH_USER,
        password_file="/root/pisec-bench-password",
        cafile=f"{CLIENT_TLS}/pisec-ca.crt",
        cert=f"{CLIENT_TLS}/client.crt",
        key=f"{CLIENT_TLS}/client.key",
    )
    held = Credentials(
        username=HELD_USER,
        password_file="/root/pisec-bench-held-password",
        cafile=creds.cafile,
    )
    address = docker(
        "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", broker_name
    ).strip()

    def endpoint(
        label: str, host: str, port: int, tls: bool = False, cert: bool = False
    ) -> Endpoint:
        return Endpoint(label, host, port, tls=tls, client_cert=cert, server_name=broker_name)

    plain = endpoint("plaintext", address, PLAINTEXT_PORT)
    tls_ecdsa = endpoint("tls-ecdsa", address, 8883, tls=True)
    mtls_ecdsa = endpoint("mtls-ecdsa", address, 8884, tls=True, cert=True)
    bench = BrokerBench(
        broker,
        client,
        creds,
        counts,
        extra_processes=("wireguard-go",),
        client_host=ContainerBroker(docker, client_name),
        client_processes=("wireguard-go",),
        held_creds=held,
        held_iterations=HELD_ITERATIONS,
    )
    # Password endpoints get counts.connects connections, mutual TLS ones
    # (no hash, a few ms each) counts.cert_connects; see Counts.
    few, many = counts.connects, counts.cert_connects

    first = "tls, ECDSA P-256"
    steps = [
        *_measurements(bench, first, plain, [(tls_ecdsa, few), (mtls_ecdsa, many)], [tls_ecdsa]),
        ("memory, plaintext clients", lambda: bench.memory(plain)),
        ("memory, TLS clients", lambda: bench.memory(tls_ecdsa)),
        (
            f"reconnect storm: {counts.storm_clients:,} password clients",
            lambda: bench.storm(tls_ecdsa, counts.storm_clients),
        ),
        (
            f"reconnect storm: {counts.storm_clients:,} mutual TLS clients",
            lambda: bench.storm(mtls_ecdsa, counts.storm_clients),
        ),
    ]
    _run_steps(f"broker ({first})", steps)
    _bench_ciphers(docker, project, inventory, bench, broker, plain, endpoint)

    # Plain MQTT inside WireGuard: the baseline listener reached at the hub's
    # VPN address, the data path of transport `vpn` (the role's firewall
    # guards only its own ports). Measured in the vpn+tls set-up, so the
    # broker is re-provisioned once for both.
    vpn = endpoint("vpn", VPN_HUB, PLAINTEXT_PORT)
    vpn_tls = endpoint("vpn+tls", VPN_HUB, 8883, tls=True)
    tls_nagle = endpoint("tls-ecdsa-nagle", address, 8883, tls=True)
    mtls_nagle = endpoint("mtls-ecdsa-nagle", address, 8884, tls=True, cert=True)
    tls_rsa = endpoint("tls-rsa", address, 8883, tls=True)
    mtls_rsa = endpoint("mtls-rsa", address, 8884, tls=True, cert=True)
    # Each phase re-provisions the broker with playbooks/broker.yml and these
    # extra variables, then measures: connects (endpoint, count) and the
    # endpoints whose throughput is measured, each interleaved with the
    # plaintext baseline, then any further steps.
    phases: list[
        tuple[str, dict[str, str], list[tuple[Endpoint, int]], list[Endpoint], list[Step]]
    ] = [
        (
            "vpn+tls",
            {"pisec_mosquitto_transport": "vpn+tls"},
            [(vpn, few), (vpn_tls, few)],
            [vpn, vpn_tls],
            [("wireguard-go memory", lambda: bench.process_memory("wireguard-go"))],
        ),
        (
            "tls, Nagle on",
            {"pisec_mosquitto_transport": "tls", "pisec_mosquitto_tcp_nodelay": "false"},
            # Nagle's delay costs a mutual TLS connect ~40 ms: few.
            [(tls_nagle, few), (mtls_nagle, few)],
            [tls_nagle],
            [],
        ),
        (
            "tls, RSA-2048",
            {
                "pisec_mosquitto_transport": "tls",
                "pisec_mosquitto_key_type": "rsa",
                "pisec_mosquitto_key_size": "2048",
            },
            [(tls_rsa, few), (mtls_rsa, many)],
            [],
            [],
        ),
    ]
    for title, extra_vars, connects, throughput, more in phases:
        log(f"broker: switching to {title}")
        settings = [arg for key, value in extra_vars.items() for arg in ("-e", f"{key}={value}")]
        project.playbook(inventory, "broker.yml", *settings)
        steps = [*_measurements(bench, title, plain, connects, throughput), *more]
        _run_steps(f"broker ({title})", steps)
    docker("rm", "-f", broker_name, client_name, timeout=600)
    return bench.results


# What each cipher set-up is called, what the broker is told (`auto`, as
# provisioned: AES-GCM first on this machine's CPU), whether its AES
# instructions are hidden, the cipher a client that offers AES-GCM first
# must get (Python's ssl offers TLS_AES_256_GCM_SHA384 first), and its labels.
CIPHER_SETUPS = (
    ("AES instructions, AES-GCM first", "auto", False, "TLS_AES_128_GCM_SHA256", "aes"),
    ("no AES instructions, AES-GCM first", "auto", True, "TLS_AES_128_GCM_SHA256", "noaes-aes"),
    (
        "no AES instructions, ChaCha20 first",
        "chacha20",
        True,
        "TLS_CHACHA20_POLY1305_SHA256",
        "noaes-chacha20",
    ),
)


def _bench_ciphers(
    docker: Docker,
    project: Project,
    inventory: Path,
    bench: BrokerBench,
    broker: ContainerBroker,
    plain: Endpoint,
    endpoint: Callable[..., Endpoint],
) -> None:
    """What the cipher costs a broker with and without AES instructions.

    The stand-in for a Pi without them (every Pi before the Pi 5) is this
    machine with AES-NI hidden from the broker's OpenSSL (NO_AES_MASK); the
    client keeps its own. Each set-up measures mutual TLS handshakes (no
    password hash to hide them) and bulk goodput of large messages, with the
    plaintext baseline beside them, and checks the cipher the broker chose.
    """
    arch = docker("exec", broker.name, "uname", "-m").strip()
    if arch != "x86_64":
        log(f"ciphers: skipped, OpenSSL's AES mask is for x86_64 and the broker is {arch}")
        return
    log("ciphers: openssl speed on the broker, with and without AES instructions")
    speeds = {
        "aes": _openssl_speed(docker, broker.name, ""),
        "no_aes": _openssl_speed(docker, broker.name, NO_AES_MASK),
    }
    if speeds["aes"]["aes-128-gcm"] < NO_AES_SLOWDOWN * speeds["no_aes"]["aes-128-gcm"]:
        raise BenchError(
            f"OPENSSL_ia32cap={NO_AES_MASK} does not hide AES on this machine: "
            f"AES-128-GCM {speeds['aes']['aes-128-gcm']:,.0f} MB/s with it, "
            f"{speeds['no_aes']['aes-128-gcm']:,.0f} MB/s without"
        )
    bench.results["openssl_speed_mb_s"] = speeds
    provisioned = "auto"
    for title, order, masked, cipher, suffix in CIPHER_SETUPS:
        log(f"broker: switching to {title}")
        if masked:
            docker(
                "exec",
                broker.name,
                "sh",
                "-c",
                f"printf '[Service]\\nEnvironment=OPENSSL_ia32cap={NO_AES_MASK}\\n' "
                f"> {NO_AES_DROP_IN} && systemctl daemon-reload",
            )
        if order != provisioned:
            setting = f"pisec_mosquitto_tls_cipher_order={order}"
            project.playbook(inventory, "broker.yml", "-e", setting)
            provisioned = order
        broker.restart()
        environment = docker(
            "exec", broker.name, "sh", "-c", "tr '\\0' '\\n' < /proc/$(pidof mosquitto)/environ"
        )
        if (f"OPENSSL_ia32cap={NO_AES_MASK}" in environment.splitlines()) != masked:
            raise BenchError(f"{title}: mosquitto's environment does not match the set-up")
        tls = endpoint(f"tls-{suffix}", plain.host, 8883, tls=True)
        mtls = endpoint(f"mtls-{suffix}", plain.host, 8884, tls=True, cert=True)
        connects = [(mtls, bench.counts.cert_connects)]
        _run_steps(
            f"broker ({title})",
            [
                (
                    f"connect: {plain.label}, {mtls.label}, interleaved",
                    functools.partial(bench.connects, title, plain, connects),
                ),
                (
                    f"bulk goodput QoS 0: {plain.label}, {tls.label}, interleaved",
                    functools.partial(
                        bench.throughput, bulk_phase(title), plain, [tls], 0, bulk=True
                    ),
                ),
            ],
        )
        chosen = bench.results["connect"][mtls.label]["cipher"]
        if chosen != cipher:
            raise BenchError(f"{title}: the broker chose {chosen}, not {cipher}")
    docker("exec", broker.name, "sh", "-c", f"rm -f {NO_AES_DROP_IN} && systemctl daemon-reload")
    broker.restart()


def _openssl_speed(docker: Docker, name: str, mask: str) -> dict[str, float]:
    """MB/s of `openssl speed` on 16 KiB blocks in container `name`, for each of
    SPEED_CIPHERS, with OPENSSL_ia32cap set to `mask` (unset if empty)."""
    speeds = {}
    for cipher in SPEED_CIPHERS:
        argv = ["openssl", "speed", "-seconds", "1", "-bytes", "16384", "-evp", cipher]
        environment = ["env", f"OPENSSL_ia32cap={mask}"] if mask else []
        out = docker("exec", name, *environment, *argv, timeout=60)
        last = out.strip().splitlines()[-1].split()
        if not last or not last[-1].endswith("k"):
            raise BenchError(f"openssl speed {cipher}: unexpected output {out[-200:]!r}")
        speeds[cipher] = round(float(last[-1][:-1]) / 1000, 1)  # 1000s of bytes/s
    return speeds


def _measurements(
    bench: BrokerBench,
    phase: str,
    baseline: Endpoint,
    connects: Sequence[tuple[Endpoint, int]],
    throughput: Sequence[Endpoint],
) -> list[Step]:
    """The connect and throughput steps of one set-up, each against `baseline`."""
    measured = ", ".join(endpoint.label for endpoint, _ in connects)
    steps: list[Step] = [
        (
            f"connect: {baseline.label}, {measured}, interleaved",
            lambda: bench.connects(phase, baseline, connects),
        )
    ]
    if throughput:
        labels = ", ".join(endpoint.label for endpoint in throughput)
        steps += [
            (
                f"throughput QoS {qos}: {baseline.label}, {labels}, interleaved",
                functools.partial(bench.throughput, phase, baseline, throughput, qos),
            )
            for qos in (0, 1)
        ]
    return steps


def _run_steps(part: str, steps: Sequence[Step]) -> None:
    for index, (title, step) in enumerate(steps, start=1):
        log(f"{part} [{index}/{len(steps)}] {title}")
        step()


# ---- Part 2: the fleet ------------------------------------------------------------


@dataclass
class FleetRun:
    pis: int
    floor_seconds: float
    first_seconds: float
    second_seconds: float
    first_changed: int
    second_changed: int
    # A dry run (--check) of the converged fleet, and the tasks the second
    # run executed on the broker and on the busiest client Pi.
    check_seconds: float = 0.0
    second_tasks_broker: int = 0
    second_tasks_client: int = 0
    settings: dict[str, float] = field(default_factory=dict)


# Settings tried on the idempotent run (`make bench-ansible`), each against
# the second run just made: ansible.cfg as a fleet over SSH gets it, with
# pipelining (which ansible.cfg sets for SSH only; see Project.env). Each is
# the environment variable Ansible reads for the ansible.cfg key it
# overrides.
COMMITTED = "ansible.cfg, pipelining on as over SSH (the second run)"
SETTINGS: dict[str, dict[str, str]] = {
    "forks 5 (Ansible's default)": {"ANSIBLE_FORKS": "5"},
    "strategy free": {"ANSIBLE_STRATEGY": "free"},
    "pipelining off": {"ANSIBLE_PIPELINING": "False"},
    "fact cache (jsonfile, gathering smart)": {
        "ANSIBLE_GATHERING": "smart",
        "ANSIBLE_CACHE_PLUGIN": "jsonfile",
        "ANSIBLE_CACHE_PLUGIN_CONNECTION": "{state}/facts",
    },
}


def bench_fleet(
    docker: Docker,
    project: Project,
    image: str,
    sizes: Sequence[int],
    settings: bool,
    keep: bool = False,
) -> list[FleetRun]:
    runs = []
    for size in sizes:
        names = [f"pisec-bench-f{size}-broker"] + [
            f"pisec-bench-f{size}-pi{index:02d}" for index in range(1, size)
        ]
        log(f"fleet of {size}: starting {size} Pi container(s)")
        docker.start_pis(image, names)
        inventory = project.inventory(f"fleet{size}", names[0], names[1:], vpn=False)
        log(f"fleet of {size}: floor (ping + fact gathering)")
        floor = project.adhoc(inventory, "ansible.builtin.ping")
        floor += project.adhoc(
            inventory, "ansible.builtin.setup", "-a", "gather_subset=!all,network"
        )
        log(f"fleet of {size}: site.yml, first run")
        first, first_recap = project.playbook(inventory, "site.yml")
        log(f"fleet of {size}: site.yml, second run")
        second, second_recap = project.playbook(inventory, "site.yml")
        if second_recap.get("changed", 0) != 0:
            raise BenchError(f"fleet of {size}: second run of site.yml changed {second_recap}")
        tasks = {host: tasks_run(counts) for host, counts in project.last_recap.items()}
        log(f"fleet of {size}: site.yml --check")
        check, check_recap = project.playbook(inventory, "site.yml", "--check")
        if check_recap.get("changed", 0) != 0:
            raise BenchError(f"fleet of {size}: site.yml --check would change {check_recap}")
        run_ = FleetRun(
            pis=size,
            floor_seconds=round(floor, 1),
            first_seconds=round(first, 1),
            second_seconds=round(second, 1),
            first_changed=first_recap.get("changed", 0),
            second_changed=second_recap.get("changed", 0),
            check_seconds=round(check, 1),
            second_tasks_broker=tasks.get(names[0], 0),
            second_tasks_client=max((tasks.get(name, 0) for name in names[1:]), default=0),
        )
        if settings:
            run_.settings[COMMITTED] = run_.second_seconds
            for label, env in SETTINGS.items():
                log(f"fleet of {size}: second run with {label}")
                env = {key: value.format(state=project.state) for key, value in env.items()}
                seconds, recap = project.playbook(inventory, "site.yml", env=env)
                if recap.get("changed", 0) != 0:
                    raise BenchError(f"fleet of {size} with {label}: changed {recap}")
                run_.settings[label] = round(seconds, 1)
        runs.append(run_)
        if not keep:
            docker("rm", "-f", *names, timeout=600)
    return runs


# ---- The command --------------------------------------------------------------------


def machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    openssl = run(["openssl", "version"], check=False).stdout.strip()
    return {
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "arch": platform.machine(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "openssl": openssl,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pisec-bench", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--output",
        type=Path,
        default=Path("docs/benchmarks"),
        help="stem of the .md and .json files (default docs/benchmarks)",
    )
    parser.add_argument(
        "--smoke", action="store_true", help="tiny counts, one 1-Pi fleet: proves the bench runs"
    )
    parser.add_argument(
        "--fleet-sizes", default="1,5,20", help="Pis per fleet run (default 1,5,20)"
    )
    parser.add_argument(
        "--ansible-settings",
        action="store_true",
        help="also time the second run with each Ansible setting in turn (make bench-ansible)",
    )
    parser.add_argument("--skip-broker", action="store_true")
    parser.add_argument("--skip-fleet", action="store_true")
    parser.add_argument(
        "--skip-coap", action="store_true", help="skip CoAP without and with DTLS (Table 3)"
    )
    parser.add_argument(
        "--keep", action="store_true", help="leave the last fleet's containers running (debugging)"
    )
    args = parser.parse_args(argv)

    root = Path.cwd()
    if not (root / "playbooks" / "site.yml").is_file():
        print(
            f"pisec-bench: error: {root}: not the pisec project (no playbooks/site.yml)",
            file=sys.stderr,
        )
        return 2
    image = os.environ.get("PISEC_IMAGE", "")
    if not image:
        print("pisec-bench: error: PISEC_IMAGE: not set (run `make bench`)", file=sys.stderr)
        return 2
    try:
        sizes = [int(size) for size in args.fleet_sizes.split(",")]
        if not sizes or min(sizes) < 1 or max(sizes) > 100:
            raise ValueError
    except ValueError:
        print(
            f"pisec-bench: error: --fleet-sizes: 1 to 100 Pis each, not {args.fleet_sizes!r}",
            file=sys.stderr,
        )
        return 2
    counts = Counts.smoke() if args.smoke else Counts()
    if args.smoke:
        sizes = [1]
    docker = Docker.find()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="pisec-bench-") as state:
        project = Project(
            root=root,
            state=Path(state),
            venv_bin=Path(sys.executable).parent,
        )
        results: dict[str, Any] = {
            "command": "make bench-smoke"
            if args.smoke
            else "make bench-ansible"
            if args.ansible_settings
            else "make bench"
            if not (args.skip_broker or args.skip_fleet or args.skip_coap)
            and args.fleet_sizes == "1,5,20"
            else "python -m bench " + shlex.join(argv if argv is not None else sys.argv[1:]),
            "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": machine(),
            "image": image,
            "counts": asdict(counts),
        }
        try:
            docker.remove_all()
            if not args.skip_broker:
                results["broker"] = bench_broker(docker, project, image, counts)
            if not args.skip_coap:
                results["coap"] = bench_coap(
                    docker, project, image, counts, os.environ.get("PISEC_ARM64_IMAGE", "")
                )
            if not args.skip_fleet:
                fleet = bench_fleet(
                    docker, project, image, sizes, settings=args.ansible_settings, keep=args.keep
                )
                results["fleet"] = [asdict(run_) for run_ in fleet]
        except BenchError as exc:
            print(f"pisec-bench: error: {exc}", file=sys.stderr)
            return 1
        finally:
            if not args.keep:
                docker.remove_all()
    results["seconds"] = round(time.monotonic() - started, 1)
    json_path = args.output.with_suffix(".json")
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    md_path = args.output.with_suffix(".md")
    benchreport.update_markdown(md_path, benchreport.render(results, raw=str(json_path)))
    log(f"done in {results['seconds']:.0f} s: {md_path}, {json_path}")
    print(benchreport.headline(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
