"""`make bench`, part 3: the study's Table 3 (CoAP without and with DTLS) on
simulated Pis.

A broker Pi and a client Pi, provisioned by playbooks/site.yml with the
CoAPs gateway on and the client Pi a CoAPs device (so both have Debian's
libcoap3-bin). On the broker Pi, one server at a time:

- `coap-server-notls` (CoAP over UDP, the baseline, bench only: pisec never
  listens on plain CoAP),
- `coap-server-gnutls` (the same program with DTLS, pre-shared key,
  pinned by the gateway's own GnuTLS priority file to
  TLS_PSK_WITH_AES_128_CCM_8, the study's suite),
- `pisec-coapsd` (pisec's gateway: DTLS, then MQTT QoS 1 into mosquitto),

each measured for resident memory idle and with `coap_sessions` sessions
held, the code it maps, the client's handshake and request times, and its
own CPU per handshake and per request (from /proc/PID/schedstat, in
nanoseconds: not the client's speed). On the client Pi, `coap-client-notls`
and `coap-client-gnutls` with one observed session each: memory and code.
The study's Wismote figures sit beside them as ratios in the report.
"""

from __future__ import annotations

import json
import re
import secrets
import shlex
import subprocess
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.core import LABEL, BenchError, Counts, log

if TYPE_CHECKING:
    from bench.run import Docker, Project

BROKER = "pisec-bench-coap-broker"
CLIENT = "pisec-bench-coap-client"
HOME = "/root/pisec-bench"
COAPGEN = f"{HOME}/coapgen.py"
BENCH_PORT = 15683  # coap-server: UDP here, DTLS on the next port
GATEWAY_PORT = 5684
BENCH_IDENTITY = "pisec-bench"
SUITE = "TLS_PSK_WITH_AES_128_CCM_8"
PRIORITIES = "/etc/pisec/coaps/gnutls.conf"  # the gateway's own (role pisec_coaps)
TOPIC = "pisec/bench/coap"
TLS_LIBRARIES = ("libssl", "libcrypto")
# coap-server's /time answers like "Dec 07 03:14:09".
TIME_ANSWER = re.compile(r"[A-Z][a-z]{2} [0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}")
# Debian's architecture names, for the machine names uname gives.
DEBIAN_ARCH = {"x86_64": "amd64", "aarch64": "arm64"}


class Pi:
    """One bench Pi: commands, and coapgen.py runs, by `docker exec`."""

    def __init__(self, docker: Docker, name: str) -> None:
        self.docker = docker
        self.name = name

    def sh(self, script: str, timeout: float = 120) -> str:
        return self.docker("exec", self.name, "sh", "-c", script, timeout=timeout)

    def coapgen(self, *args: str, timeout: float = 300) -> dict[str, Any]:
        out = self.docker(
            "exec",
            self.name,
            "env",
            f"PYTHONPATH={HOME}",
            "python3",
            COAPGEN,
            *args,
            timeout=timeout,
        )
        lines = [line for line in out.splitlines() if line.startswith("{")]
        if not lines:
            raise BenchError(f"{self.name}: coapgen {args[0]} printed no result: {out[-300:]!r}")
        result: dict[str, Any] = json.loads(lines[-1])
        return result

    def install(self, root: Path) -> None:
        """coapgen.py and pisec's libcoap layer (the gateway's own package)."""
        self.sh(f"rm -rf {HOME} && mkdir -p {HOME}/pisec && touch {HOME}/pisec/__init__.py")
        self.docker("cp", str(root / "bench" / "coapgen.py"), f"{self.name}:{COAPGEN}")
        self.docker("cp", str(root / "src" / "pisec" / "coaps"), f"{self.name}:{HOME}/pisec/coaps")

    def main_pid(self, unit: str) -> int:
        pid = self.sh(f"systemctl show -P MainPID {shlex.quote(unit)}").strip()
        if not pid.isdigit() or pid == "0":
            raise BenchError(f"{self.name}: {unit} is not running")
        return int(pid)

    def cpu_ns(self, pid: int) -> int:
        """Time the process's threads have spent on a CPU, in nanoseconds."""
        out = self.sh(f"cat /proc/{pid}/task/*/schedstat")
        return sum(int(line.split()[0]) for line in out.splitlines() if line.strip())

    def wait_udp(self, port: int) -> None:
        self.sh(
            f"for i in $(seq 50); do ss -Hlun 'sport = :{port}' | grep -q . && exit 0; "
            "sleep 0.2; done; echo 'nothing listens' >&2; exit 1"
        )


def _hold(client: Pi, server: Pi, pid: int, args: list[str], seconds: float) -> dict[str, Any]:
    """The server's footprint while the client Pi holds sessions open."""
    argv = [
        client.docker.binary, "exec", "-i", client.name, "env", f"PYTHONPATH={HOME}",
        "python3", COAPGEN, "hold", *args, "--hold-seconds", str(seconds),
    ]  # fmt: skip
    with subprocess.Popen(
        argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as process:
        assert process.stdout is not None and process.stdin is not None
        timer = threading.Timer(seconds + 60, process.kill)
        timer.start()
        try:
            line = process.stdout.readline()
            if not line.startswith("{"):
                error = process.stderr.read() if process.stderr else ""
                raise BenchError(f"{client.name}: coapgen hold: {line!r} {error[-300:]!r}")
            ready: dict[str, Any] = json.loads(line)
            time.sleep(1.0)  # let the server settle its buffers
            held = server.coapgen("footprint", str(pid))
            process.stdin.close()
            process.wait(timeout=60)
        except subprocess.TimeoutExpired as exc:
            raise BenchError(f"{client.name}: coapgen hold did not end") from exc
        finally:
            timer.cancel()
            # The sessions end with the process inside the container, not
            # with the `docker exec` on this side.
            client.sh("pkill -f '[c]oapgen.py hold' || true")
    return {"ready": ready, "footprint": held}


def _measure_server(
    label: str,
    server: Pi,
    client: Pi,
    pid: int,
    url: str,
    auth: list[str],
    request: list[str],
    expect: str,
    counts: Counts,
) -> dict[str, Any]:
    """Idle memory, memory with sessions, handshakes and requests of one server.

    Idle is read after one session came and went, so that what a server
    sets up once, on its first session (GnuTLS's state, the gateway's MQTT
    connection for the device), is not counted per session."""
    warm = client.coapgen("latency", url, *auth, *request, "--rounds", "1", "--requests", "1")
    if warm["failures"] or set(warm["codes"]) != {expect}:
        raise BenchError(f"coap: {label}: the first session failed: {warm}")
    time.sleep(1.0)
    idle = server.coapgen("footprint", str(pid))
    log(f"coap: {label}: holding {counts.coap_sessions} sessions")
    held = _hold(
        client,
        server,
        pid,
        [url, *auth, *request, "--sessions", str(counts.coap_sessions)],
        counts.max_seconds,
    )
    ready = held["ready"]
    if ready["failures"] or ready["codes"] != {expect: counts.coap_sessions}:
        raise BenchError(
            f"coap: {label}: not every one of {counts.coap_sessions} sessions got {expect}: {ready}"
        )
    phases: dict[str, Any] = {}
    for phase, rounds, requests in (
        ("handshakes", counts.coap_rounds, 0),
        ("requests", 0, counts.coap_requests),
    ):
        items = rounds or requests
        extra = ["--rounds", str(rounds), "--requests", str(requests)]
        log(f"coap: {label}: {items} {phase}")
        before = server.cpu_ns(pid)
        result = client.coapgen("latency", url, *auth, *request, *extra)
        spent = server.cpu_ns(pid) - before
        if result["failures"] or set(result["codes"]) != {expect}:
            raise BenchError(f"coap: {label}: {phase}: not every answer was {expect}: {result}")
        result["server_cpu_us_each"] = round(spent / 1000 / items, 1)
        phases[phase] = result
    return {
        "url": url,
        "idle": idle,
        "held": held["footprint"],
        "sessions": counts.coap_sessions,
        "codes": held["ready"]["codes"],
        "suite": phases["handshakes"].get("suite"),
        "protocol": phases["handshakes"].get("protocol"),
        "handshakes": phases["handshakes"],
        "requests": phases["requests"],
    }


def _start(pi: Pi, unit: str, argv: list[str], environment: dict[str, str]) -> int:
    settings = [f"--setenv={name}={value}" for name, value in environment.items()]
    pi.sh(f"systemctl stop {unit} 2>/dev/null; systemctl reset-failed {unit} 2>/dev/null; true")
    pi.docker("exec", pi.name, "systemd-run", f"--unit={unit}", *settings, *argv)
    return pi.main_pid(unit)


def _client_footprint(client: Pi, label: str, argv: list[str]) -> dict[str, Any]:
    """A client with one observed session (3 s): memory and code while it runs."""
    result = client.coapgen("client", "--sample-after", "1.5", "--", *argv)
    sample = result["sample"]
    if result["exit"] != 0 or sample is None or not sample["rss_kib"]:
        raise BenchError(f"coap: {label}: exit {result['exit']}: {result['output']!r}")
    if not TIME_ANSWER.search(result["output"]):
        raise BenchError(f"coap: {label}: no answer from /time: {result['output']!r}")
    return result


PROGRAMS = (
    "coap-server-notls",
    "coap-server-gnutls",
    "coap-client-notls",
    "coap-client-gnutls",
    "mosquitto",
)
ARM64 = "pisec-bench-coap-arm64"


def static_code_arm64(docker: Docker, root: Path, image: str) -> dict[str, Any]:
    """The programs' code on an emulated arm64 Pi, read from their ELF
    headers: a process there is the emulator's, its mappings too."""
    docker("rm", "-f", ARM64, check=False)
    docker(
        "run", "-d", "--name", ARM64, "--label", LABEL,
        "--entrypoint", "sleep", image, "1800",
    )  # fmt: skip
    pi = Pi(docker, ARM64)
    try:
        log("coap: installing libcoap3-bin and mosquitto on an emulated arm64 Pi")
        pi.sh(
            "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "
            "--no-install-recommends libcoap3-bin mosquitto >/dev/null",
            timeout=1200,
        )
        pi.install(root)
        result = pi.coapgen("static-code", *PROGRAMS, timeout=600)
    finally:
        docker("rm", "-f", ARM64, check=False)
    if result["arch"] != "aarch64":
        raise BenchError(f"coap: the arm64 Pi runs {result['arch']}")
    return result


def bench_coap(
    docker: Docker, project: Project, image: str, counts: Counts, arm64_image: str = ""
) -> dict[str, Any]:
    log("coap: starting a broker Pi and a client Pi")
    docker.start_pis(image, [BROKER, CLIENT])
    inventory = project.inventory("coap", BROKER, [CLIENT], vpn=False, coaps=True)
    log("coap: provisioning with playbooks/site.yml (CoAPs gateway on, the client Pi a device)")
    project.playbook(inventory, "site.yml")
    server, client = Pi(docker, BROKER), Pi(docker, CLIENT)
    for pi in (server, client):
        pi.install(project.root)
    address = docker(
        "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", BROKER
    ).strip()
    # The bench server's key: random, this run's only, held by no device,
    # in root-only files on both Pis. coap-server also insists on a default
    # key (-k) on its command line: another random one, which no client uses.
    key = secrets.token_hex(16)
    files = project.state / "coap"
    (files / "bench.psk").write_text(key, encoding="utf-8")
    hint_line = f"pisec,{BENCH_IDENTITY},{key}\n"
    for name in ("bench.coap-client", "bench.ids"):
        (files / name).write_text(hint_line, encoding="utf-8")
    for pi, name in ((client, "bench.psk"), (client, "bench.coap-client"), (server, "bench.ids")):
        docker("cp", str(files / name), f"{pi.name}:{HOME}/{name}")
        pi.sh(f"chown root:root {HOME}/{name} && chmod 0400 {HOME}/{name}")
    bench_auth = ["--identity", BENCH_IDENTITY, "--key-file", f"{HOME}/bench.psk"]
    get = ["--method", "get"]
    results: dict[str, Any] = {"servers": {}, "clients": {}}

    log("coap: coap-server-notls (plain CoAP, the baseline)")
    pid = _start(
        server, "pisec-bench-coap-notls",
        ["/usr/bin/coap-server-notls", "-A", address, "-p", str(BENCH_PORT)], {},
    )  # fmt: skip
    server.wait_udp(BENCH_PORT)
    results["servers"]["coap-server-notls"] = _measure_server(
        "coap-server-notls", server, client, pid,
        f"coap://{address}:{BENCH_PORT}/time", [], get, "2.05", counts,
    )  # fmt: skip
    server.sh("systemctl stop pisec-bench-coap-notls")

    log(f"coap: coap-server-gnutls (DTLS, pre-shared key, {SUITE} only)")
    pid = _start(
        server,
        "pisec-bench-coap-gnutls",
        [
            "/usr/bin/coap-server-gnutls", "-A", address, "-p", str(BENCH_PORT),
            "-h", "pisec", "-k", secrets.token_hex(16), "-i", f"{HOME}/bench.ids",
        ],
        {"GNUTLS_SYSTEM_PRIORITY_FILE": PRIORITIES, "GNUTLS_SYSTEM_PRIORITY_FAIL_ON_INVALID": "1"},
    )  # fmt: skip
    server.wait_udp(BENCH_PORT + 1)
    secure = f"coaps://{address}:{BENCH_PORT + 1}/time"
    results["servers"]["coap-server-gnutls"] = _measure_server(
        "coap-server-gnutls", server, client, pid, secure, bench_auth, get, "2.05", counts
    )
    # The clients, against the same server: plain CoAP on its first port,
    # DTLS on the next; each observes /time for 3 s.
    log("coap: coap-client-notls and coap-client-gnutls, one session each")
    results["clients"]["coap-client-notls"] = _client_footprint(
        client, "coap-client-notls",
        ["coap-client-notls", "-s", "3", f"coap://{address}:{BENCH_PORT}/time"],
    )  # fmt: skip
    results["clients"]["coap-client-gnutls"] = _client_footprint(
        client, "coap-client-gnutls",
        [
            "coap-client-gnutls", "-u", BENCH_IDENTITY, "-k", "unused",
            "-h", f"{HOME}/bench.coap-client", "-s", "3", secure,
        ],
    )  # fmt: skip
    server.sh("systemctl stop pisec-bench-coap-gnutls")

    log("coap: pisec-coapsd (DTLS, then MQTT QoS 1 into mosquitto)")
    server.sh("systemctl restart pisec-coapsd")
    server.wait_udp(GATEWAY_PORT)
    pid = server.main_pid("pisec-coapsd")
    device_auth = ["--identity", CLIENT, "--key-file", f"/etc/pisec/coaps/{CLIENT}.psk"]
    results["servers"]["pisec-coapsd"] = _measure_server(
        "pisec-coapsd", server, client, pid,
        f"coaps://{address}:{GATEWAY_PORT}/ps/{TOPIC}", device_auth,
        ["--method", "post", "--payload", "21.5"], "2.04", counts,
    )  # fmt: skip
    results["mosquitto"] = server.coapgen("footprint", str(server.main_pid("mosquitto")))
    native = server.coapgen("static-code", *PROGRAMS)
    results["static_code"] = {DEBIAN_ARCH.get(native["arch"], native["arch"]): native}

    for label in ("coap-server-gnutls", "pisec-coapsd"):
        suite = results["servers"][label]["suite"]
        if suite != SUITE:
            raise BenchError(f"coap: {label} negotiated {suite}, not {SUITE}")
    docker("rm", "-f", BROKER, CLIENT, timeout=600)
    if arm64_image and "arm64" not in results["static_code"]:
        results["static_code"]["arm64"] = static_code_arm64(docker, project.root, arm64_image)
    else:
        log("coap: no arm64 code sizes (PISEC_ARM64_IMAGE is not set)")
    return results
