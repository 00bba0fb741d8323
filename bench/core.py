"""The broker measurements of `make bench`, independent of where the broker runs.

A measurement drives the load generator (bench/loadgen.py, standard library
only) on a client and reads the broker's CPU time and resident memory from
/proc. Where both run is a `Broker` and a `Client`: containers for the real
bench (bench/run.py), loopback processes for the smoke test.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

# Every container and network the bench starts carries this label.
LABEL = "pisec.bench=1"


def log(message: str) -> None:
    """Progress for people, on stderr."""
    stamp = time.strftime("%H:%M:%S")
    print(f"\033[1;34m[{stamp}] {message}\033[0m", file=sys.stderr, flush=True)


class BenchError(RuntimeError):
    """A measurement could not be made; the message names what and where."""


@dataclass(frozen=True)
class Usage:
    """A process's CPU time so far and its resident memory now."""

    pid: int
    cpu_seconds: float
    rss_kib: int


def parse_usage(pid: int, stat: str, status: str, ticks_per_second: int) -> Usage:
    """Read utime+stime from /proc/PID/stat and VmRSS from /proc/PID/status."""
    # The command name (field 2) is in parentheses and may hold spaces.
    after_name = stat.rsplit(")", 1)[-1].split()
    if len(after_name) < 13:
        raise BenchError(f"/proc/{pid}/stat: unexpected content {stat[:80]!r}")
    utime, stime = int(after_name[11]), int(after_name[12])
    rss = next(
        (int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")),
        None,
    )
    if rss is None:
        raise BenchError(f"/proc/{pid}/status: no VmRSS line")
    return Usage(pid=pid, cpu_seconds=(utime + stime) / ticks_per_second, rss_kib=rss)


class Broker(Protocol):
    """The host the broker runs on."""

    name: str

    def usage(self, process: str) -> Usage:
        """CPU time and memory of the (oldest) process named `process`."""

    def restart(self) -> None:
        """Restart mosquitto and wait until it accepts connections again."""


class Running(Protocol):
    def wait(self, timeout: float) -> dict[str, Any]: ...

    def ended(self) -> bool:
        """Whether the process has ended (its report is then waiting)."""


class Client(Protocol):
    """The host the load generator runs on."""

    name: str

    def loadgen(self, args: Sequence[str], timeout: float) -> dict[str, Any]:
        """Run the load generator to the end and return its JSON report."""

    def start_loadgen(self, args: Sequence[str]) -> Running:
        """Start the load generator in the background."""

    def exists(self, path: str) -> bool: ...

    def touch(self, path: str) -> None: ...

    def scratch(self, name: str) -> str:
        """A path on the client for coordination files."""


@dataclass(frozen=True)
class Endpoint:
    """One way to reach the broker: address, port, and what the client shows."""

    label: str
    host: str
    port: int
    tls: bool = False
    client_cert: bool = False
    server_name: str = ""

    def args(self, creds: Credentials) -> list[str]:
        argv = ["--host", self.host, "--port", str(self.port)]
        if self.tls:
            argv += ["--cafile", creds.cafile, "--server-name", self.server_name or self.host]
        if self.client_cert:
            argv += ["--cert", creds.cert, "--key", creds.key]
        else:
            argv += ["--username", creds.username, "--password-file", creds.password_file]
        return argv


@dataclass(frozen=True)
class Credentials:
    """Paths on the client: CA, client certificate and key, password file."""

    username: str
    password_file: str
    cafile: str = ""
    cert: str = ""
    key: str = ""


@dataclass(frozen=True)
class Counts:
    """How much load each measurement puts on the broker (all bounded)."""

    # Connections per endpoint with a password: each costs the broker one
    # PBKDF2 check (50 to 70 ms of CPU on the bench's VMs), so few.
    connects: int = 100
    # Connections per mutual-TLS endpoint: no hash, about 4 ms of broker CPU
    # each, so ten times as many keep the CPU figure well above the 10 ms
    # resolution of /proc's clock ticks. (Not with Nagle's algorithm on,
    # where each waits ~40 ms for a delayed ACK: that one gets `connects`.)
    cert_connects: int = 1000
    # The connections of one set-up are made in this many rounds, the
    # plaintext baseline first in each round (see BrokerBench.connects).
    rounds: int = 4
    # Messages per throughput run, shared out over `pairs` publisher-
    # subscriber pairs, each in a process of its own so that the load
    # generator is not held to one core: at these counts a run lasts a
    # second or more, a hundred times the resolution of /proc's CPU clock.
    messages_qos0: int = 100000
    messages_qos1: int = 50000
    pairs: int = 4
    payload_bytes: int = 64
    # Bulk runs (the cost of the cipher itself): large payloads, where
    # encrypting and decrypting outweigh the broker's work per message.
    bulk_messages: int = 10000
    bulk_payload_bytes: int = 16384
    throughput_repeats: int = 3
    # A QoS 1 run that loses messages is followed by this many at offered
    # rates halving the interval between loss and none (BrokerBench._goodput).
    rate_search_steps: int = 5
    held: tuple[int, ...] = (100, 1000)
    max_seconds: float = 120.0
    # The reconnect storm: clients held, the broker restarted, all back at
    # once through this many reconnecting threads of one load generator.
    storm_clients: int = 1000
    storm_workers: int = 16
    # CoAP (bench/coap.py): sessions each server holds at once while its
    # memory is read, new sessions (handshakes) timed, and requests timed
    # one after another on one session.
    coap_sessions: int = 50
    coap_rounds: int = 200
    coap_requests: int = 2000

    @classmethod
    def smoke(cls) -> Counts:
        return cls(
            connects=8,
            cert_connects=12,
            rounds=2,
            messages_qos0=2000,
            messages_qos1=1000,
            bulk_messages=200,
            pairs=2,
            rate_search_steps=2,
            throughput_repeats=1,
            held=(5, 20),
            max_seconds=30.0,
            storm_clients=20,
            storm_workers=4,
            coap_sessions=3,
            coap_rounds=3,
            coap_requests=20,
        )


def mosquitto_password_hash(password: str, iterations: int) -> str:
    """A password_file hash as mosquitto_passwd writes it: `$7$iterations$salt$hash`.

    PBKDF2-HMAC-SHA512, a 12-byte random salt and a 64-byte digest, both in
    standard base64.
    """
    if iterations < 1:
        raise BenchError(f"iterations: must be positive, not {iterations}")
    salt = os.urandom(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, iterations, 64)
    encoded = [base64.b64encode(value).decode("ascii") for value in (salt, digest)]
    return f"$7${iterations}${encoded[0]}${encoded[1]}"


def summary(samples: Sequence[float]) -> dict[str, float]:
    """Median, p95, min and max of a non-empty list of samples."""
    if not samples:
        raise BenchError("no samples to summarise")
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {
        "median": statistics.median(ordered),
        "p95": p95,
        "min": ordered[0],
        "max": ordered[-1],
        "n": float(len(ordered)),
    }


@dataclass
class BrokerBench:
    """Runs the measurements of one broker set-up and collects the results."""

    broker: Broker
    client: Client
    creds: Credentials
    counts: Counts
    extra_processes: tuple[str, ...] = ()
    # Who the memory measurement's held clients log in as (default: `creds`).
    # A password's iteration count changes the CPU of each CONNECT, not what
    # a connected client holds, so the bench gives them a user with a cheap
    # hash: 1,000 clients then connect in seconds, not minutes.
    held_creds: Credentials | None = None
    held_iterations: int = 0  # that user's PBKDF2 iterations, for the report
    # The cores broker and client share (the bench's containers run on one machine).
    cores: int = field(default_factory=lambda: usable_cores())
    # Processes on the client host that carry its traffic (its wireguard-go),
    # read through `client_host`: their CPU counts in a throughput run's
    # shared cores, under "client NAME".
    client_host: Broker | None = None
    client_processes: tuple[str, ...] = ()
    results: dict[str, Any] = field(default_factory=dict)
    # Throughput runs made, for their scratch files' names.
    _runs: int = field(default=0, init=False)

    def _cpu(self) -> dict[str, float]:
        return {
            name: self.broker.usage(name).cpu_seconds
            for name in ("mosquitto", *self.extra_processes)
        }

    def _all_cpu(self) -> dict[str, float]:
        """The broker's processes and, if named, the client's tunnel."""
        cpu = self._cpu()
        if self.client_host is not None:
            for name in self.client_processes:
                cpu[f"client {name}"] = self.client_host.usage(name).cpu_seconds
        return cpu

    def _ready(self, running: Running, ready: str, seconds: float) -> bool:
        """Whether the load generator wrote its ready file on the client
        before it ended or `seconds` passed."""
        deadline = time.monotonic() + seconds
        while not self.client.exists(ready):
            if running.ended() or time.monotonic() > deadline:
                return False
            time.sleep(0.1)
        return True

    def _loadgen(self, command: str, endpoint: Endpoint, *args: str) -> dict[str, Any]:
        """One bounded run of the load generator against `endpoint`."""
        return self.client.loadgen(
            [
                command,
                *endpoint.args(self.creds),
                *args,
                *("--max-seconds", str(self.counts.max_seconds)),
                *("--client-id-prefix", f"bench-{command}-{endpoint.label}"),
            ],
            timeout=self.counts.max_seconds + 30,
        )

    def connects(
        self, phase: str, baseline: Endpoint, measured: Sequence[tuple[Endpoint, int]]
    ) -> dict[str, Any]:
        """Connect latency (TCP + TLS + CONNACK) and broker CPU per 1,000 connects.

        `measured` pairs each endpoint with its number of connections. They
        are made in Counts.rounds rounds; each round connects to the
        plaintext `baseline` first, then to each endpoint in turn. A shared
        machine's speed drifts by tens of percent within minutes, so every
        endpoint's ratio is to the baseline measured beside it, in the same
        rounds of the same set-up (`phase`), never to one from earlier.
        """
        rounds = max(1, self.counts.rounds)
        plan = [(baseline, self.counts.connects), *measured]
        if len({endpoint.label for endpoint, _ in plan}) != len(plan):
            raise BenchError(f"{phase}: an endpoint is listed twice")
        _refuse_again(self.results.get("baselines", {}), phase)
        _refuse_again(
            self.results.get("connect", {}), *(endpoint.label for endpoint, _ in measured)
        )
        samples: dict[str, list[float]] = {endpoint.label: [] for endpoint, _ in plan}
        cpu: dict[str, dict[str, float]] = {endpoint.label: {} for endpoint, _ in plan}
        reports: dict[str, dict[str, Any]] = {}
        failures = dict.fromkeys(samples, 0)
        for index in range(rounds):
            for endpoint, total in plan:
                # The rounds share `total` out; the first ones take the rest.
                count = total // rounds + (1 if index < total % rounds else 0)
                if count == 0:
                    continue
                before = self._cpu()
                report = self._loadgen("connect", endpoint, "--count", str(count))
                after = self._cpu()
                label = endpoint.label
                samples[label] += report["samples_ms"]
                failures[label] += int(report.get("failures", 0))
                reports[label] = report
                for name, seconds in after.items():
                    cpu[label][name] = cpu[label].get(name, 0.0) + seconds - before[name]
        results: dict[str, Any] = {}
        for endpoint, _ in plan:
            label = endpoint.label
            if not samples[label]:
                raise BenchError(f"{label}: no connection to {endpoint.host}:{endpoint.port}")
            done = len(samples[label])
            results[label] = {
                "endpoint": label,
                "phase": phase,
                "latency_ms": summary(samples[label]),
                "failures": failures[label],
                "tls_version": reports[label].get("tls_version"),
                "cipher": reports[label].get("cipher"),
                "cpu_ms_per_1000": {
                    name: round(seconds * 1000 / done * 1000, 1)
                    for name, seconds in cpu[label].items()
                },
            }
        base = results.pop(baseline.label)
        for result in results.values():
            result["baseline"] = {
                "endpoint": baseline.label,
                "latency_ms": base["latency_ms"],
                "cpu_ms_per_1000": base["cpu_ms_per_1000"],
            }
        self.results.setdefault("baselines", {})[phase] = base
        self.results.setdefault("connect", {}).update(results)
        return results

    def throughput(
        self,
        phase: str,
        baseline: Endpoint,
        measured: Sequence[Endpoint],
        qos: int,
        *,
        bulk: bool = False,
    ) -> dict[str, Any]:
        """Goodput: messages delivered per second, with the CPU of broker and load generator.

        Each of Counts.throughput_repeats rounds runs the plaintext
        `baseline` first, then each endpoint, so that every ratio is to a
        baseline measured beside it (as in `connects`). A QoS 1 run that
        lost messages is searched down (see `_goodput`); QoS 0 reports its
        loss beside the delivered rate. `bulk`: Counts.bulk_messages of
        Counts.bulk_payload_bytes each, which the cipher's speed decides.
        """
        plan = [baseline, *measured]
        if len({endpoint.label for endpoint in plan}) != len(plan):
            raise BenchError(f"{phase}: an endpoint is listed twice")
        _refuse_again(self.results.get("throughput_baselines", {}), f"{phase}/qos{qos}")
        _refuse_again(
            self.results.get("throughput", {}),
            *(f"{endpoint.label}/qos{qos}" for endpoint in measured),
        )
        runs: dict[str, list[dict[str, Any]]] = {endpoint.label: [] for endpoint in plan}
        for _ in range(max(1, self.counts.throughput_repeats)):
            for endpoint in plan:
                runs[endpoint.label].append(self._goodput(endpoint, qos, bulk))
        results = {
            label: self._throughput_result(phase, label, qos, done, bulk)
            for label, done in runs.items()
        }
        self.results["cores"] = self.cores
        base = results.pop(baseline.label)
        for result in results.values():
            result["baseline"] = {
                "endpoint": baseline.label,
                "messages_per_second": base["messages_per_second"],
                "broker_us_per_message": base["broker_us_per_message"],
            }
        self.results.setdefault("throughput_baselines", {})[f"{phase}/qos{qos}"] = base
        throughput = self.results.setdefault("throughput", {})
        throughput.update({f"{label}/qos{qos}": result for label, result in results.items()})
        return results

    def _goodput(self, endpoint: Endpoint, qos: int, bulk: bool = False) -> dict[str, Any]:
        """One goodput figure: a run as fast as the broker takes messages and,
        at QoS 1, if that one lost any (a subscriber's queue overflowed),
        a search for the highest offered rate that loses none: halving the
        interval between the last rate without loss and the first with,
        in whole messages per second, Counts.rate_search_steps times. The
        run kept is the one at the highest rate without loss; `searched`
        lists every run made, and what limited the row is what limited the
        first one (a paced run saturates nothing by design).
        """
        first = self._throughput_run(endpoint, qos, rate=0.0, bulk=bulk)
        tried = [first]
        best = first if qos == 0 or first["lost"] == 0 else None
        if best is None:
            low, high = 0.0, float(first["offered_per_second"] or 0.0)
            for _ in range(self.counts.rate_search_steps):
                rate = float(round((low + high) / 2))
                if rate < 1 or rate in (low, high):
                    break
                run = self._throughput_run(endpoint, qos, rate=rate, bulk=bulk)
                tried.append(run)
                if run["lost"] == 0:
                    low, best = rate, run
                else:
                    high = rate
        if best is None:
            raise BenchError(
                f"{endpoint.label}: QoS 1 lost messages at every offered rate tried: "
                + ", ".join(f"{run['rate'] or 'unpaced'}: {run['lost']} lost" for run in tried)
            )
        best = dict(best)
        best["limit"] = first["shares"]["limit"]
        best["searched"] = [
            {
                key: run[key]
                for key in ("rate", "offered_per_second", "messages_per_second", "lost", "shares")
            }
            for run in tried
        ]
        return best

    def _throughput_run(
        self, endpoint: Endpoint, qos: int, rate: float, bulk: bool = False
    ) -> dict[str, Any]:
        """One throughput run, with the broker's CPU over it alone.

        The load generator connects and subscribes every pair first, then
        waits for a file before it publishes: the CPU the broker spends on
        those CONNECTs (a password hash each) stays out of the figure. A
        paced run sends at most PACED_SECONDS of messages at its rate.
        """
        self._runs += 1
        name = f"throughput-{endpoint.label}-qos{qos}-{self._runs}"
        ready, go = self.client.scratch(f"{name}.ready"), self.client.scratch(f"{name}.go")
        count = self.counts.messages_qos0 if qos == 0 else self.counts.messages_qos1
        size = self.counts.payload_bytes
        if bulk:
            count, size = self.counts.bulk_messages, self.counts.bulk_payload_bytes
        if rate:
            count = max(self.counts.pairs, min(count, int(rate * PACED_SECONDS)))
        running = self.client.start_loadgen(
            [
                "throughput",
                *endpoint.args(self.creds),
                *("--qos", str(qos), "--count", str(count)),
                *("--size", str(size)),
                *("--pairs", str(self.counts.pairs), "--rate", f"{rate:.0f}"),
                # A message the broker drops (a full queue) is a result.
                "--allow-loss",
                *("--ready-file", ready, "--go-file", go),
                *("--max-seconds", str(self.counts.max_seconds)),
                *("--client-id-prefix", f"bench-throughput-{endpoint.label}"),
            ]
        )
        if not self._ready(running, ready, self.counts.max_seconds):
            report = running.wait(timeout=self.counts.max_seconds + 30)
            raise BenchError(
                f"{endpoint.label}: throughput pairs not subscribed: "
                f"{report.get('error') or json.dumps(report)[:300]}"
            )
        before = self._all_cpu()
        self.client.touch(go)
        report = running.wait(timeout=self.counts.max_seconds + 30)
        after = self._all_cpu()
        if report.get("error") or report.get("timed_out") or not report.get("elapsed_s"):
            raise BenchError(
                f"{endpoint.label}: throughput at QoS {qos}: {report.get('error') or 'timed out'}"
            )
        report["broker_cpu_s"] = {name: after[name] - before[name] for name in after}
        report["shares"] = self._shares(report)
        return report

    def _shares(self, run: dict[str, Any]) -> dict[str, Any]:
        """CPU in cores over one run (first publish to last delivery), and what limited it."""
        elapsed = float(run["elapsed_s"])
        broker = run["broker_cpu_s"]["mosquitto"] / elapsed
        loadgen = float(run["loadgen_cpu_s"]) / elapsed
        busiest = float(run["loadgen_busiest_share"] or 0.0)
        others = {
            name: seconds / elapsed
            for name, seconds in run["broker_cpu_s"].items()
            if name != "mosquitto"
        }
        total = broker + loadgen + sum(others.values())
        return {
            "broker": round(broker, 3),
            "loadgen": round(loadgen, 3),
            "loadgen_busiest": round(busiest, 3),
            "others": {name: round(share, 3) for name, share in others.items()},
            "total": round(total, 3),
            "limit": bottleneck(broker, busiest, total, self.cores),
        }

    def _throughput_result(
        self, phase: str, label: str, qos: int, done: list[dict[str, Any]], bulk: bool = False
    ) -> dict[str, Any]:
        """One endpoint's runs summarised: rates and CPU over the runs kept,
        the limit the worst of theirs (see LIMITS)."""

        def median(values: Iterator[float]) -> float:
            return statistics.median(list(values))

        published = sum(int(run["published"]) for run in done)
        lost = sum(int(run["lost"]) for run in done)
        return {
            "endpoint": label,
            "phase": phase,
            "qos": qos,
            "messages": max(int(run["requested"]) for run in done),
            "payload_bytes": done[0]["size"],
            "bulk": bulk,
            "pairs": done[0]["pairs"],
            "messages_per_second": summary([float(run["messages_per_second"]) for run in done]),
            "offered_per_second": summary([float(run["offered_per_second"]) for run in done]),
            "rates": [run["rate"] for run in done],
            "lost": lost,
            "loss_percent": round(100 * lost / published, 3) if published else 0.0,
            "extra_runs": sum(len(run["searched"]) - 1 for run in done),
            "searched": [run["searched"] for run in done],
            "broker_us_per_message": round(
                median(
                    run["broker_cpu_s"]["mosquitto"] * 1e6 / max(1, run["received"]) for run in done
                ),
                2,
            ),
            "broker_cores": round(median(run["shares"]["broker"] for run in done), 3),
            "loadgen_cores": round(median(run["shares"]["loadgen"] for run in done), 3),
            "loadgen_busiest_cores": max(
                float(searched["shares"]["loadgen_busiest"])
                for run in done
                for searched in run["searched"]
            ),
            "other_cores": {
                name: round(median(run["shares"]["others"][name] for run in done), 3)
                for name in done[0]["shares"]["others"]
            },
            "limit": max((run["limit"] for run in done), key=LIMITS.index),
        }

    @contextmanager
    def holding(self, endpoint: Endpoint, count: int, stages: int = 1) -> Iterator[None]:
        """Keep `count` clients connected inside the block.

        `stages`: how many holds of up to Counts.max_seconds each may be
        made inside this one; it stays connected for all of them.
        """
        ready = self.client.scratch(f"hold-{endpoint.label}-{count}.ready")
        release = self.client.scratch(f"hold-{endpoint.label}-{count}.release")
        hold_seconds = self.counts.max_seconds * stages
        running = self.client.start_loadgen(
            [
                "hold",
                # A client certificate is who a mutual-TLS client is: no user.
                *endpoint.args(
                    self.creds if endpoint.client_cert else self.held_creds or self.creds
                ),
                "--count",
                str(count),
                "--hold-seconds",
                str(hold_seconds),
                "--max-seconds",
                str(hold_seconds * 2),
                "--ready-file",
                ready,
                "--release-file",
                release,
                "--client-id-prefix",
                f"bench-hold-{endpoint.label}",
            ]
        )
        if not self._ready(running, ready, self.counts.max_seconds):
            self.client.touch(release)
            report = running.wait(timeout=60)
            raise BenchError(
                f"{endpoint.label}: {count} clients not connected within "
                f"{self.counts.max_seconds:.0f} s: {json.dumps(report)[:300]}"
            )
        try:
            yield
        finally:
            self.client.touch(release)
            report = running.wait(timeout=self.counts.max_seconds + 30)
            if int(report.get("connected", 0)) != count:
                raise BenchError(
                    f"{endpoint.label}: held {report.get('connected')} of {count} clients: "
                    f"{report.get('error', '')}"
                )
            # A hold that ran out of time before its release measured fewer clients.
            if report.get("released_by") != "release-file":
                raise BenchError(
                    f"{endpoint.label}: the hold of {count} clients ended by "
                    f"{report.get('released_by')} before the measurement was done"
                )

    def memory(self, endpoint: Endpoint) -> dict[str, Any]:
        """Broker resident memory, fresh and with each count of held clients.

        The clients of one count stay connected while those of the next are
        added (100, then 900 more for 1,000): every connect with a password
        costs the broker a hash, so none is made twice.
        """
        self.broker.restart()
        rss = {"0": self.broker.usage("mosquitto").rss_kib}
        counts = sorted(set(self.counts.held))
        if not counts or counts[0] < 1:
            raise BenchError(f"held: counts of clients must be positive, not {self.counts.held}")
        with ExitStack() as stack:
            connected = 0
            for stage, count in enumerate(counts):
                stack.enter_context(
                    self.holding(endpoint, count - connected, stages=len(counts) - stage)
                )
                connected = count
                # Let the broker settle its buffers before reading.
                time.sleep(1.0)
                rss[str(count)] = self.broker.usage("mosquitto").rss_kib
        result = {"endpoint": endpoint.label, "rss_kib": rss}
        self.results.setdefault("memory", {})[endpoint.label] = result
        if self.held_creds is not None and self.held_iterations:
            self.results["held_iterations"] = self.held_iterations
        return result

    def storm(self, endpoint: Endpoint, count: int) -> dict[str, Any]:
        """A reconnect storm: `count` clients held, mosquitto restarted, all back at once.

        The broker's CPU is that of the new mosquitto process when the last
        client is back (its start included, a few ms); the load generator
        reports its own CPU over the storm, so the table shows whether it
        or the broker was the limit.
        """
        _refuse_again(self.results.get("storm", {}), endpoint.label)
        ready = self.client.scratch(f"storm-{endpoint.label}-{count}.ready")
        # Password clients log in with pisec's hash cost (the bench user's).
        limit = self.counts.max_seconds * 2
        running = self.client.start_loadgen(
            [
                "storm",
                *endpoint.args(self.creds),
                *("--count", str(count), "--workers", str(self.counts.storm_workers)),
                *("--max-seconds", str(limit), "--ready-file", ready),
                *("--client-id-prefix", f"bench-storm-{endpoint.label}"),
            ]
        )
        if not self._ready(running, ready, limit):
            report = running.wait(timeout=limit + 30)
            raise BenchError(
                f"{endpoint.label}: {count} storm clients not connected: {json.dumps(report)[:300]}"
            )
        self.broker.restart()
        report = running.wait(timeout=limit + 30)
        broker_cpu = self.broker.usage("mosquitto").cpu_seconds
        if report.get("error") or report.get("storm_s") is None:
            raise BenchError(f"{endpoint.label}: reconnect storm: {report.get('error')}")
        result = {
            "endpoint": endpoint.label,
            "clients": count,
            "workers": report["workers"],
            "seconds": report["storm_s"],
            "first_back_seconds": report["first_back_s"],
            "retries": report["retries"],
            "broker_cpu_seconds": round(broker_cpu, 3),
            "loadgen_cpu_seconds": report["loadgen_cpu_s"],
        }
        self.results.setdefault("storm", {})[endpoint.label] = result
        return result

    def process_memory(self, process: str) -> int:
        """Resident memory of another process on the broker (wireguard-go)."""
        rss = self.broker.usage(process).rss_kib
        self.results.setdefault("processes", {})[process] = {"rss_kib": rss}
        return rss


# A component using this share of a core, or more, is the limit.
SATURATED = 0.9


def bulk_phase(phase: str) -> str:
    """The set-up name of a bulk goodput run measured beside `phase`'s connects."""
    return f"{phase} (bulk)"


# What limited a throughput run, from the figure that stands to the one
# that does not: a row reports the last of its runs' limits in this order.
LIMITS = ("broker", "none saturated", "shared cores", "load generator")
# A paced run (a QoS 1 rate search) sends this many seconds of messages at most.
PACED_SECONDS = 10.0


def bottleneck(broker: float, busiest_loadgen: float, total: float, cores: int) -> str:
    """What limited a throughput run, from CPU shares in cores. A load-
    generator process at a full core comes first: the run then says how
    fast the generator is, whatever the broker did. Then mosquitto (one
    thread) at a full core; then every core the broker, load generator and
    tunnel share, all busy; else nothing was saturated."""
    if busiest_loadgen >= SATURATED:
        return "load generator"
    if broker >= SATURATED:
        return "broker"
    if total >= SATURATED * cores:
        return "shared cores"
    return "none saturated"


def usable_cores() -> int:
    """The cores this process may run on (the bench's containers share them)."""
    return len(os.sched_getaffinity(0)) or 1


def _refuse_again(results: dict[str, Any], *keys: str) -> None:
    """Before measuring: refuse a result that would overwrite one already made."""
    again = sorted(set(results) & set(keys))
    if again:
        raise BenchError(f"measured twice: {', '.join(again)} (labels and set-ups must differ)")


class RunningProcess:
    """A load generator started in the background."""

    def __init__(self, process: subprocess.Popen[str], what: str) -> None:
        self.process = process
        self.what = what

    def ended(self) -> bool:
        return self.process.poll() is not None

    def wait(self, timeout: float) -> dict[str, Any]:
        try:
            out, err = self.process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            self.process.kill()
            raise BenchError(f"{self.what}: no result within {timeout:.0f} s") from exc
        return loadgen_report(self.what, self.process.returncode, out, err)


def loadgen_report(what: str, code: int, out: str, err: str) -> dict[str, Any]:
    try:
        report: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError) as exc:
        raise BenchError(f"{what}: no JSON report (exit {code}): {err.strip()[-400:]}") from exc
    if code != 0:
        raise BenchError(f"{what}: exit {code}: {report.get('error') or err.strip()[-400:]}")
    return report
