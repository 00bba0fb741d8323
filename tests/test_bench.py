"""The bench's measurements and report, against a real mosquitto on loopback.

The same BrokerBench that `make bench` points at containers runs here with
tiny counts against a local broker process, so the measuring and reporting
code cannot rot between bench runs. `make bench-smoke` runs the container
path.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from bench import report as benchreport
from bench.core import (
    LIMITS,
    BenchError,
    BrokerBench,
    Counts,
    Credentials,
    Endpoint,
    Running,
    RunningProcess,
    Usage,
    bottleneck,
    bulk_phase,
    loadgen_report,
    mosquitto_password_hash,
    parse_usage,
    summary,
)
from bench.run import NO_AES_MASK, _openssl_speed, recap_hosts, recap_totals, tasks_run
from tests.conftest import (
    BENCH_USER,
    PROJECT,
    BenchBrokerFiles,
    Broker,
    load_passwd_module,
    running_mosquitto,
    write_bench_broker,
)

LOADGEN = PROJECT / "bench/loadgen.py"


class LocalBroker:
    """mosquitto as a child process of the test, restartable."""

    name = "loopback"

    def __init__(self, files: BenchBrokerFiles) -> None:
        self.files = files
        self.stack = contextlib.ExitStack()
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = self.stack.enter_context(
            running_mosquitto(self.files.config, self.files.tls_port, self.files.log)
        )

    def stop(self) -> None:
        self.stack.close()
        self.stack = contextlib.ExitStack()

    def restart(self) -> None:
        self.stop()
        self.start()

    def usage(self, process: str) -> Usage:
        if process != "mosquitto" or self.process is None:
            raise BenchError(f"no {process} here")
        pid = self.process.pid
        return parse_usage(
            pid,
            Path(f"/proc/{pid}/stat").read_text(),
            Path(f"/proc/{pid}/status").read_text(),
            os.sysconf("SC_CLK_TCK"),
        )


class LocalClient:
    name = "loopback"

    def __init__(self, scratch: Path) -> None:
        self.directory = scratch

    def _argv(self, args: Sequence[str]) -> list[str]:
        return [sys.executable, str(LOADGEN), *args]

    def loadgen(self, args: Sequence[str], timeout: float) -> dict[str, Any]:
        done = subprocess.run(
            self._argv(args), capture_output=True, text=True, timeout=timeout, check=False
        )
        return loadgen_report(f"loadgen {args[0]}", done.returncode, done.stdout, done.stderr)

    def start_loadgen(self, args: Sequence[str]) -> Running:
        process = subprocess.Popen(
            self._argv(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        return RunningProcess(process, f"loadgen {args[0]}")

    def exists(self, path: str) -> bool:
        return Path(path).exists()

    def touch(self, path: str) -> None:
        Path(path).touch()

    def scratch(self, name: str) -> str:
        return str(self.directory / name)


@pytest.fixture
def local(broker: Broker, tmp_path: Path) -> Iterator[tuple[LocalBroker, LocalClient, Credentials]]:
    files = write_bench_broker(broker, tmp_path)
    local_broker = LocalBroker(files)
    local_broker.start()
    creds = Credentials(
        username=BENCH_USER, password_file=str(files.password_file), cafile=str(broker.ca_file)
    )
    try:
        yield local_broker, LocalClient(tmp_path), creds
    finally:
        local_broker.stop()


class RecordingClient(LocalClient):
    """LocalClient that notes each load-generator run: command, port, count."""

    def __init__(self, scratch: Path) -> None:
        super().__init__(scratch)
        self.calls: list[tuple[str, str, str]] = []

    def _note(self, args: Sequence[str]) -> None:
        argv = list(args)
        count = argv[argv.index("--count") + 1] if "--count" in argv else ""
        self.calls.append((argv[0], argv[argv.index("--port") + 1], count))

    def loadgen(self, args: Sequence[str], timeout: float) -> dict[str, Any]:
        self._note(args)
        return super().loadgen(args, timeout)

    def start_loadgen(self, args: Sequence[str]) -> Running:
        self._note(args)
        return super().start_loadgen(args)


def test_the_bench_measures_a_real_broker_and_reports_it(
    local: tuple[LocalBroker, LocalClient, Credentials], tmp_path: Path
) -> None:
    broker, _, creds = local
    client = RecordingClient(tmp_path)
    plain_port, tls_port = str(broker.files.plain_port), str(broker.files.tls_port)
    plain = Endpoint("plaintext", "127.0.0.1", broker.files.plain_port)
    tls = Endpoint(
        "tls-ecdsa", "127.0.0.1", broker.files.tls_port, tls=True, server_name="localhost"
    )
    # The memory step's clients log in as a second user with a hash the bench made.
    held_password = "held password"
    with broker.files.passwd.open("a") as passwd:
        passwd.write(f"held-user:{mosquitto_password_hash(held_password, 1000)}\n")
    held_file = tmp_path / "held-password"
    held_file.write_text(held_password + "\n")
    held = Credentials("held-user", str(held_file), cafile=creds.cafile)
    counts = Counts.smoke()
    bench = BrokerBench(broker, client, creds, counts, held_creds=held, held_iterations=1000)
    broker.restart()  # reads the new user

    # 7 TLS connects in 2 rounds: 4 then 3, each round after the baseline's.
    measured = bench.connects("loopback", plain, [(tls, 7)])
    half = str(counts.connects // 2)
    assert client.calls == [
        ("connect", plain_port, half),
        ("connect", tls_port, "4"),
        ("connect", plain_port, half),
        ("connect", tls_port, "3"),
    ]
    result = measured["tls-ecdsa"]
    assert result["latency_ms"]["n"] == 7
    assert 0 < result["latency_ms"]["median"] <= result["latency_ms"]["max"]
    # After minus before: a CPU time read in the wrong order goes negative.
    # (Not > 0: 8 connects with a 1,000-iteration hash fit in one 10 ms tick.)
    assert result["cpu_ms_per_1000"]["mosquitto"] >= 0
    assert bench.results["baselines"]["loopback"]["cpu_ms_per_1000"]["mosquitto"] >= 0
    assert result["tls_version"] in ("TLSv1.2", "TLSv1.3")
    assert result["phase"] == "loopback"
    baseline = bench.results["baselines"]["loopback"]
    assert baseline["latency_ms"]["n"] == counts.connects
    assert baseline["tls_version"] is None
    assert result["baseline"]["latency_ms"] == baseline["latency_ms"]
    assert "plaintext" not in bench.results["connect"]  # a baseline, not a row of its own
    with pytest.raises(BenchError, match="listed twice"):
        bench.connects("loopback", plain, [(plain, 2)])
    with pytest.raises(BenchError, match=r"measured twice: loopback \("):
        bench.connects("loopback", plain, [])
    with pytest.raises(BenchError, match="measured twice: tls-ecdsa"):
        bench.connects("another set-up", plain, [(tls, 2)])

    client.calls.clear()
    for qos in (0, 1):
        bench.throughput("loopback", plain, [tls], qos)
    # Nothing lost at QoS 1 on loopback: no search, one run per endpoint and round.
    assert [port for _, port, _ in client.calls] == [plain_port, tls_port] * (
        2 * counts.throughput_repeats
    )
    qos1 = bench.results["throughput"]["tls-ecdsa/qos1"]
    assert (qos1["lost"], qos1["extra_runs"], qos1["pairs"]) == (0, 0, counts.pairs)
    assert qos1["messages"] == counts.messages_qos1
    assert qos1["rates"] == [None] * counts.throughput_repeats  # unpaced
    rate = qos1["messages_per_second"]
    assert 0 < rate["min"] <= rate["median"] <= rate["max"]
    # What the broker took, published over the publishing time: at QoS 1 the
    # broker acknowledged each before the last was delivered, so the two
    # rates are alike. Within a factor of four: each pair is a process of its
    # own, and on a loaded machine (pytest's workers share the cores) one can
    # be descheduled between its last acknowledgement and noting the time;
    # CI saw 0.49x once with these counts' runs of a few tens of ms.
    assert qos1["offered_per_second"]["median"] >= 0.25 * rate["median"]
    assert qos1["broker_us_per_message"] >= 0 and qos1["broker_cores"] >= 0
    assert qos1["loadgen_busiest_cores"] > 0
    assert qos1["loadgen_cores"] > 0
    # The row's limit is the worst of its runs', each from that run's CPU shares.
    runs = [searched[0]["shares"] for searched in qos1["searched"]]
    limits = [
        bottleneck(run["broker"], run["loadgen_busiest"], run["total"], bench.cores) for run in runs
    ]
    assert qos1["limit"] == max(limits, key=LIMITS.index)
    assert qos1["loadgen_busiest_cores"] == max(run["loadgen_busiest"] for run in runs)
    assert qos1["baseline"]["endpoint"] == "plaintext"
    qos0 = bench.results["throughput"]["tls-ecdsa/qos0"]
    assert qos0["messages_per_second"]["median"] > 0
    assert 0 <= qos0["loss_percent"] <= 100
    assert bench.results["throughput_baselines"]["loopback/qos1"]["lost"] == 0

    # A cipher set-up (bench.run.CIPHER_SETUPS): handshakes, and bulk
    # goodput of large messages, in a table of their own.
    client.calls.clear()
    cipher_connect = Endpoint(
        "mtls-aes", "127.0.0.1", broker.files.tls_port, tls=True, server_name="localhost"
    )
    cipher_bulk = Endpoint(
        "tls-aes", "127.0.0.1", broker.files.tls_port, tls=True, server_name="localhost"
    )
    bench.connects("AES instructions, AES-GCM first", plain, [(cipher_connect, 4)])
    bench.throughput(
        bulk_phase("AES instructions, AES-GCM first"), plain, [cipher_bulk], 0, bulk=True
    )
    assert [(port, count) for name, port, count in client.calls if name == "throughput"] == [
        (plain_port, str(counts.bulk_messages)),
        (tls_port, str(counts.bulk_messages)),
    ] * counts.throughput_repeats
    bulk = bench.results["throughput"]["tls-aes/qos0"]
    assert (bulk["bulk"], bulk["payload_bytes"]) == (True, counts.bulk_payload_bytes)
    assert bench.results["connect"]["mtls-aes"]["cipher"].startswith("TLS_")

    memory = bench.memory(plain)["rss_kib"]
    assert list(memory) == ["0", "5", "20"]
    assert all(value > 0 for value in memory.values())
    assert bench.results["held_iterations"] == 1000
    # The held clients were the held user's: mosquitto logged their logins.
    assert "u'held-user'" in broker.files.log.read_text()

    storm = bench.storm(tls, counts.storm_clients)
    assert (storm["clients"], storm["workers"]) == (20, 4)
    assert 0 < storm["first_back_seconds"] <= storm["seconds"]
    assert storm["broker_cpu_seconds"] >= 0 and storm["loadgen_cpu_seconds"] > 0
    with pytest.raises(BenchError, match="measured twice: tls-ecdsa"):
        bench.storm(tls, 2)

    results = {
        "command": "pytest",
        "date": "today",
        "machine": {"cpus": 2, "cpu": "test", "arch": "x86_64", "kernel": "k", "openssl": "o"},
        "broker": bench.results,
        "fleet": [
            {
                "pis": 1,
                "floor_seconds": 2.0,
                "first_seconds": 30.0,
                "second_seconds": 8.0,
                "first_changed": 40,
                "second_changed": 0,
                "check_seconds": 7.5,
                "second_tasks_broker": 16,
                "second_tasks_client": 11,
                "settings": {
                    "ansible.cfg as committed (the second run)": 8.0,
                    "strategy free": 6.0,
                },
            }
        ],
    }
    json.dumps(results)  # what make bench writes must serialise
    section = benchreport.render(results)
    assert f"| loopback | plaintext + password (baseline) | {counts.connects} |" in section
    assert "| loopback | TLS, ECDSA P-256 server + password | 7 |" in section
    baseline_row = next(line for line in section.splitlines() if "(baseline) | 8 |" in line)
    assert baseline_row.split("|")[7].strip() == "1.00x"  # its latency against itself
    assert "| loopback | TLS, ECDSA P-256 server + password | 1 |" in section  # throughput
    assert "### Publish goodput" in section
    goodput = section.split("### Publish goodput")[1].split("### Ciphers")[0]
    assert "| TLS, AES instructions, AES-GCM first |" not in goodput
    ciphers = section.split("### Ciphers")[1].splitlines()
    cipher_row = next(line for line in ciphers if line.startswith("| AES instr"))
    assert cipher_row.split("|")[2].strip() == bench.results["connect"]["mtls-aes"]["cipher"]
    megabytes = bulk["messages_per_second"]["median"] * counts.bulk_payload_bytes / 1e6
    assert cipher_row.split("|")[6].strip() == f"{megabytes:,.1f}"
    assert f"{counts.bulk_messages:,} messages of 16,384 bytes" in section
    rows = [*bench.results["throughput"].values(), *bench.results["throughput_baselines"].values()]
    if any(row["loadgen_busiest_cores"] >= 0.9 for row in rows):
        assert "**The load generator limited" in section
    else:
        assert "so none limited a row by itself" in section
    assert "1,000 PBKDF2 iterations" in section
    assert "### Reconnect storm after a broker restart" in section
    assert "| TLS, ECDSA P-256 server + password | 20 | " in section
    assert "| strategy free | 6.0 | 0.75x |" in section
    assert "| 1 | 2.0 | 30.0 | 8.0 | 4.00x | 7.5 | 16 / 11 | 40 | 0 |" in section
    assert "Raw numbers: `docs/benchmarks.json`" in section
    other = benchreport.render(results, raw="docs/benchmarks-ansible.json")
    assert "Raw numbers: `docs/benchmarks-ansible.json`" in other
    # The Pis' release comes from the image tag; runs before it was there
    # were bookworm.
    assert "are Debian bookworm (amd64) containers" in section
    trixie = benchreport.render({**results, "image": "pisec/pi-systemd:trixie-arm64-0123456789ab"})
    assert "are Debian trixie (arm64) containers" in trixie

    page = tmp_path / "benchmarks.md"
    page.write_text("# pisec benchmarks\n\nHand-written password table.\n")
    benchreport.update_markdown(page, section)
    benchreport.update_markdown(page, section)
    text = page.read_text()
    assert text.count(benchreport.BEGIN) == 1
    assert text.startswith("# pisec benchmarks\n\nHand-written password table.\n")
    assert "connect latency, TLS, ECDSA P-256 server + password" in benchreport.headline(results)


def _connect_result(phase: str, label: str, cpu: float, base_cpu: float) -> dict[str, Any]:
    latency = summary([5.0, 6.0])
    return {
        "endpoint": label,
        "phase": phase,
        "latency_ms": latency,
        "cpu_ms_per_1000": {"mosquitto": cpu},
        "baseline": {"latency_ms": latency, "cpu_ms_per_1000": {"mosquitto": base_cpu}},
    }


def test_rsa_against_ecdsa_is_also_given_against_each_set_ups_own_baseline() -> None:
    # The machine ran 20 % slower in the RSA set-up: its baseline shows it.
    connect = {
        "mtls-ecdsa": _connect_result("ecdsa", "mtls-ecdsa", 4000.0, 50000.0),
        "mtls-rsa": _connect_result("rsa", "mtls-rsa", 6000.0, 60000.0),
    }
    baselines = {
        phase: {
            "endpoint": "plaintext",
            "latency_ms": summary([5.0]),
            "cpu_ms_per_1000": {"mosquitto": cpu},
        }
        for phase, cpu in (("ecdsa", 50000.0), ("rsa", 60000.0))
    }
    results = {
        "command": "pytest",
        "date": "today",
        "machine": {"cpus": 2, "cpu": "test", "arch": "x86_64", "kernel": "k", "openssl": "o"},
        "broker": {"connect": connect, "baselines": baselines},
    }
    section = benchreport.render(results)
    assert "| mutual TLS | 4000 | 6000 | 1.50x | 1.25x |" in section
    assert "| rsa | plaintext + password (baseline) | 1 | 5.0 |" in section
    assert "(1.25x, each to its baseline)" in benchreport.headline(results)


def test_the_bench_hash_is_one_the_role_reads() -> None:
    line = mosquitto_password_hash("secret", 1000)
    parsed = load_passwd_module().Pbkdf2Hash.parse(line)
    assert parsed is not None and parsed.iterations == 1000
    assert parsed.verifies("secret") and not parsed.verifies("other")
    with pytest.raises(BenchError, match="iterations"):
        mosquitto_password_hash("secret", 0)


def test_a_refused_login_stops_the_bench_with_its_reason(
    local: tuple[LocalBroker, LocalClient, Credentials], tmp_path: Path
) -> None:
    broker, client, creds = local
    wrong = tmp_path / "wrong"
    wrong.write_text("not the password\n")
    bench = BrokerBench(
        broker,
        client,
        Credentials(username=creds.username, password_file=str(wrong)),
        Counts.smoke(),
    )
    with pytest.raises(BenchError, match="not authorised"):
        bench.connects("loopback", Endpoint("plaintext", "127.0.0.1", broker.files.plain_port), [])


def test_a_storm_whose_broker_stays_down_says_how_many_came_back(
    local: tuple[LocalBroker, LocalClient, Credentials], tmp_path: Path
) -> None:
    broker, client, creds = local
    ready = tmp_path / "storm.ready"
    plain = Endpoint("plaintext", "127.0.0.1", broker.files.plain_port)
    running = client.start_loadgen(
        [
            "storm",
            *plain.args(creds),
            *("--count", "3", "--workers", "2"),
            *("--max-seconds", "6", "--ready-file", str(ready)),
        ]
    )
    for _ in range(100):
        if ready.exists():
            break
        time.sleep(0.1)
    assert ready.read_text() == "3\n"
    broker.stop()
    with pytest.raises(BenchError, match=r"0 of 3 clients came back; the time ran out .*refused"):
        running.wait(timeout=30)


def test_proc_stat_with_spaces_and_parentheses_in_the_name() -> None:
    stat = "42 (mos quit) to) S 1 42 42 0 -1 4194560 500 0 0 0 250 130 0 0 20 0 1 0 100"
    usage = parse_usage(42, stat, "Name:\tx\nVmRSS:\t  5120 kB\n", 100)
    assert usage == Usage(pid=42, cpu_seconds=3.8, rss_kib=5120)
    with pytest.raises(BenchError, match="VmRSS"):
        parse_usage(42, stat, "Name:\tx\n", 100)


def test_summary_and_recap() -> None:
    stats = summary([float(value) for value in range(1, 101)])
    assert (stats["median"], stats["p95"], stats["min"], stats["max"]) == (50.5, 95.0, 1.0, 100.0)
    with pytest.raises(BenchError):
        summary([])
    recap = (
        "PLAY RECAP ****\n"
        "pi-1 : ok=10 changed=2 unreachable=0 failed=0 skipped=3 rescued=0 ignored=0\n"
        "localhost : ok=4 changed=1 unreachable=0 failed=0 skipped=0 rescued=0 ignored=0\n"
    )
    assert recap_totals(recap)["changed"] == 3
    assert recap_hosts(recap)["pi-1"] == {
        "ok": 10,
        "changed": 2,
        "unreachable": 0,
        "failed": 0,
        "skipped": 3,
        "rescued": 0,
        "ignored": 0,
    }
    assert tasks_run(recap_hosts(recap)["pi-1"]) == 12
    with pytest.raises(BenchError, match="RECAP"):
        recap_totals("no recap here")


class ScriptedRun:
    """A throughput run that already ended, with the report it gives."""

    def __init__(self, report: dict[str, Any]) -> None:
        self.report = report

    def wait(self, timeout: float) -> dict[str, Any]:
        return self.report

    def ended(self) -> bool:
        return True


class LossyClient(LocalClient):
    """A client whose QoS 1 runs lose messages above `limit` messages per second,
    and unpaced; it records the offered rates asked for."""

    def __init__(self, scratch: Path, limit: float) -> None:
        super().__init__(scratch)
        self.limit = limit
        self.rates: list[float] = []
        self.counts: list[int] = []

    def start_loadgen(self, args: Sequence[str]) -> Running:
        argv = list(args)
        Path(argv[argv.index("--ready-file") + 1]).touch()
        rate = float(argv[argv.index("--rate") + 1])
        self.rates.append(rate)
        offered = rate or 9000.0
        lost = 0 if 0 < rate <= self.limit else 25
        count = int(argv[argv.index("--count") + 1])
        self.counts.append(count)
        return ScriptedRun(
            {
                "requested": count,
                "size": 64,
                "pairs": 2,
                "rate": rate or None,
                "published": count,
                "received": count - lost,
                "lost": lost,
                "loss_percent": 100 * lost / count,
                "elapsed_s": count / offered,
                "offered_per_second": offered,
                "messages_per_second": (count - lost) * offered / count,
                "loadgen_cpu_s": 0.2,
                "loadgen_busiest_share": 0.3,
                "timed_out": False,
                "error": None,
            }
        )


class TickingBroker:
    """A broker whose CPU clock advances a tenth of a second per reading."""

    name = "ticking"

    def __init__(self) -> None:
        self.cpu = 0.0

    def usage(self, process: str) -> Usage:
        self.cpu += 0.1
        return Usage(pid=1, cpu_seconds=self.cpu, rss_kib=1)

    def restart(self) -> None:
        pass


def test_a_qos1_run_that_loses_messages_is_searched_down_to_a_rate_without_loss(
    tmp_path: Path,
) -> None:
    client = LossyClient(tmp_path, limit=5000.0)
    counts = Counts(messages_qos1=1000, throughput_repeats=1, rate_search_steps=5)
    bench = BrokerBench(
        TickingBroker(),
        client,
        Credentials("u", "pw"),
        counts,
        cores=2,
        # The client's tunnel, read as the broker's processes are.
        client_host=TickingBroker(),
        client_processes=("wireguard-go",),
    )
    plain = Endpoint("plaintext", "127.0.0.1", 1883)
    tls = Endpoint("tls-ecdsa", "127.0.0.1", 8883, tls=True)
    bench.throughput("lossy", plain, [tls], 1)
    # Unpaced, then halving [0, 9000] in whole messages per second: 4500
    # keeps all, 6750, 5625 and 5062 lose, 4781 keeps all; for each endpoint.
    assert client.rates == [0.0, 4500.0, 6750.0, 5625.0, 5062.0, 4781.0] * 2
    result = bench.results["throughput"]["tls-ecdsa/qos1"]
    assert result["rates"] == [4781.0]
    assert result["lost"] == 0 and result["extra_runs"] == 5
    assert [run["lost"] for run in result["searched"][0]] == [25, 0, 25, 25, 25, 0]
    assert result["messages_per_second"]["median"] == 4781.0
    # The CPU read before the start and after the end: 0.1 s over 1000/4781 s.
    assert result["broker_cores"] == pytest.approx(0.478, abs=0.001)
    assert result["broker_us_per_message"] == 100.0
    # What limited the row is what limited its unpaced run (0.1 s over
    # 1000/9000 s: 0.9 of a core), not the paced run kept.
    shares = [run["shares"] for run in result["searched"][0]]
    assert (shares[0]["broker"], shares[0]["limit"]) == (0.9, "broker")
    # The paced run kept: broker 0.48, generator 0.96, client tunnel 0.48 of 2 cores.
    assert shares[-1]["limit"] == "shared cores"
    assert result["limit"] == "broker"
    assert shares[0]["others"] == {"client wireguard-go": 0.9}
    assert result["other_cores"] == {"client wireguard-go": pytest.approx(0.478, abs=0.001)}
    section = benchreport.render(
        {
            "command": "pytest",
            "date": "today",
            "machine": {"cpus": 2, "cpu": "t", "arch": "x", "kernel": "k", "openssl": "o"},
            "broker": bench.results,
        }
    )
    assert "4,781 (searched, 5 more runs)" in section
    assert "| client wireguard-go 0.48 | broker |" in section
    assert "so none limited a row by itself. Limits over the 2 rows: broker: 2." in section


def test_a_qos1_endpoint_that_loses_at_every_rate_stops_the_bench(tmp_path: Path) -> None:
    client = LossyClient(tmp_path, limit=0.0)
    counts = Counts(messages_qos1=100_000, throughput_repeats=1, rate_search_steps=3)
    bench = BrokerBench(TickingBroker(), client, Credentials("u", "pw"), counts)
    plain = Endpoint("plaintext", "127.0.0.1", 1883)
    with pytest.raises(BenchError, match="lost messages at every offered rate tried"):
        bench.throughput("lossy", plain, [], 1)
    assert client.rates == [0.0, 4500.0, 2250.0, 1125.0]
    # A paced run sends ten seconds of messages at its rate, not all 100,000.
    assert client.counts == [100_000, 45_000, 22_500, 11_250]


@pytest.mark.parametrize(
    ("broker", "busiest", "total", "limit"),
    [
        (0.95, 0.3, 1.4, "broker"),
        (0.5, 0.92, 1.5, "load generator"),
        # Both at a full core: the run measured the generator.
        (0.95, 0.95, 1.95, "load generator"),
        (0.8, 0.4, 1.85, "shared cores"),
        (0.6, 0.4, 1.2, "none saturated"),
    ],
)
def test_what_limited_a_run(broker: float, busiest: float, total: float, limit: str) -> None:
    assert bottleneck(broker, busiest, total, cores=2) == limit


class SpeedDocker:
    """Stands in for `docker exec NAME [env OPENSSL_ia32cap=M] openssl speed ...`."""

    def __init__(self, outputs: dict[tuple[str, str], str]) -> None:
        self.outputs = outputs
        self.calls: list[tuple[str, ...]] = []

    def __call__(self, *args: str, timeout: float = 300, check: bool = True) -> str:
        self.calls.append(args)
        mask = args[3].partition("=")[2] if args[2] == "env" else ""
        return self.outputs[(mask, args[-1])]


def _speed_output(name: str, kilobytes: str) -> str:
    return (
        "Doing AES-128-GCM ops for 1s on 16384 size blocks: 17600 AES-128-GCM ops in 1.00s\n"
        "version: 3.5.9\nbuilt on: ...\nThe 'numbers' are in 1000s of bytes per second processed.\n"
        f"type          16384 bytes\n{name}  {kilobytes}\n"
    )


def test_openssl_speed_is_read_per_cipher_with_and_without_the_mask() -> None:
    docker = SpeedDocker(
        {
            ("", "aes-128-gcm"): _speed_output("AES-128-GCM", "15563685.89k"),
            ("", "chacha20-poly1305"): _speed_output("ChaCha20-Poly1305", "3802759.17k"),
            (NO_AES_MASK, "aes-128-gcm"): _speed_output("AES-128-GCM", "288587.78k"),
            (NO_AES_MASK, "chacha20-poly1305"): _speed_output("ChaCha20-Poly1305", "3782557.70k"),
        }
    )
    assert _openssl_speed(docker, "broker", "") == {  # type: ignore[arg-type]
        "aes-128-gcm": 15563.7,
        "chacha20-poly1305": 3802.8,
    }
    assert _openssl_speed(docker, "broker", NO_AES_MASK)["aes-128-gcm"] == 288.6  # type: ignore[arg-type]
    assert docker.calls[-1][:4] == ("exec", "broker", "env", f"OPENSSL_ia32cap={NO_AES_MASK}")
    garbled = SpeedDocker({("", "aes-128-gcm"): "openssl: unknown option\n"})
    with pytest.raises(BenchError, match="openssl speed aes-128-gcm: unexpected output"):
        _openssl_speed(garbled, "broker", "")  # type: ignore[arg-type]
