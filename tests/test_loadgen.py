"""bench/loadgen.py, the bench's load generator, against a real mosquitto on loopback.

The script runs as a subprocess, as the bench runs it; one test runs it with
the system python3 and no site packages, from a copy outside the project, to
prove it needs nothing beyond the standard library.
"""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from bench import loadgen as loadgen_module
from bench.loadgen import (
    Deadline,
    LoadgenError,
    Options,
    Packet,
    ProtocolError,
    _Plan,
    _throughput_report,
    encode_remaining_length,
    parse_packet,
    publish_packet,
    run_throughput,
)
from tests.conftest import (
    BENCH_PASSWORD,
    BENCH_USER,
    PROJECT,
    Broker,
    free_port,
    running_mosquitto,
    write_bench_broker,
)

LOADGEN = PROJECT / "bench/loadgen.py"
SYSTEM_PYTHON = Path("/usr/bin/python3")
USERNAME = BENCH_USER
PASSWORD = BENCH_PASSWORD


@dataclass(frozen=True)
class BenchBroker:
    """A listener without TLS and one with, sharing users and an ACL that
    lets bench-user use pisec/bench/#; and the session broker's mTLS listener."""

    plain_port: int
    tls_port: int
    mtls_port: int
    ca_file: Path
    rogue_ca_file: Path
    client_cert: Path
    client_key: Path
    password_file: Path

    def plain(self, *extra: str) -> list[str]:
        return ["--host", "127.0.0.1", "--port", str(self.plain_port), *self.login(), *extra]

    def tls(self, *extra: str) -> list[str]:
        return [
            "--host",
            "127.0.0.1",
            "--server-name",
            "localhost",
            "--port",
            str(self.tls_port),
            "--cafile",
            str(self.ca_file),
            *self.login(),
            *extra,
        ]

    def login(self) -> list[str]:
        return ["--username", USERNAME, "--password-file", str(self.password_file)]


@pytest.fixture(scope="module")
def bench_broker(broker: Broker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BenchBroker]:
    files = write_bench_broker(broker, tmp_path_factory.mktemp("bench-broker"))
    with running_mosquitto(files.config, files.tls_port, files.log):
        yield BenchBroker(
            files.plain_port,
            files.tls_port,
            broker.mtls_port,
            broker.ca_file,
            broker.rogue_ca_file,
            broker.client_cert,
            broker.client_key,
            files.password_file,
        )


@dataclass(frozen=True)
class Run:
    code: int
    report: dict[str, object]
    stderr: str


def _finished(code: int | None, out: str, err: str) -> Run:
    """The run, once its stdout is checked to be exactly one JSON object."""
    assert code is not None
    assert out.count("\n") == 1, f"stdout must be one JSON line, got {out!r} ({err})"
    report = json.loads(out)
    assert isinstance(report, dict)
    return Run(code, report, err)


def loadgen(*args: str, command: Sequence[str] = (sys.executable, str(LOADGEN))) -> Run:
    process = subprocess.run(
        [*command, *args], capture_output=True, text=True, timeout=20, check=False
    )
    return _finished(process.returncode, process.stdout, process.stderr)


# --- MQTT framing, in process ----------------------------------------------------------


@pytest.mark.parametrize(
    ("length", "encoded"),
    [
        (0, "00"),
        (127, "7f"),
        (128, "8001"),
        (16_383, "ff7f"),
        (16_384, "808001"),
        (2_097_151, "ffff7f"),
        (2_097_152, "80808001"),
        (268_435_455, "ffffff7f"),
    ],
)
def test_remaining_length_matches_the_specification(length: int, encoded: str) -> None:
    assert encode_remaining_length(length).hex() == encoded
    packet = bytes((0x30,)) + bytes.fromhex(encoded) + bytes(length)
    if length < 20_000:
        assert parse_packet(packet) == (Packet(0x30, bytes(length)), len(packet))
    else:  # the body is not there yet
        assert parse_packet(packet[:-1]) is None


@pytest.mark.parametrize("length", [-1, 268_435_456])
def test_remaining_length_out_of_range_is_refused(length: int) -> None:
    with pytest.raises(ValueError, match="remaining length"):
        encode_remaining_length(length)


def test_packets_arriving_a_byte_at_a_time_are_framed() -> None:
    packets = [
        publish_packet("pisec/bench/x", b"a" * size, qos, packet_id=7)
        for size, qos in ((0, 0), (5, 1), (200, 0), (20_000, 1))
    ] + [bytes((0xD0, 0))]
    stream = b"".join(packets)
    buffer = bytearray()
    framed: list[bytes] = []
    start = 0
    for byte in stream:
        buffer.append(byte)
        while (parsed := parse_packet(buffer, start)) is not None:
            packet, end = parsed
            framed.append(bytes(buffer[start:end]))
            assert packet.body == bytes(buffer[end - len(packet.body) : end])
            start = end
    assert framed == packets


def test_a_five_byte_remaining_length_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError, match="longer than four bytes"):
        parse_packet(bytes.fromhex("30ffffffff01"))


def test_the_script_imports_only_the_standard_library() -> None:
    tree = ast.parse(LOADGEN.read_text())
    modules = {
        (node.module or "") if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    outside = {m for m in modules if m.split(".")[0] not in sys.stdlib_module_names}
    assert outside <= {"__future__"}, outside


# --- Against mosquitto --------------------------------------------------------------------


@pytest.mark.broker
def test_connect_over_plain_tcp(bench_broker: BenchBroker) -> None:
    run = loadgen("connect", "--count", "5", *bench_broker.plain())
    assert run.code == 0, run
    report = run.report
    assert report["error"] is None and report["timed_out"] is False
    assert (report["requested"], report["count"], report["failures"]) == (5, 5, 0)
    samples = report["samples_ms"]
    assert isinstance(samples, list) and len(samples) == 5
    assert all(isinstance(sample, float) and sample > 0 for sample in samples)
    median, p95 = report["median_ms"], report["p95_ms"]
    assert isinstance(median, float) and isinstance(p95, float)
    assert report["min_ms"] == min(samples) <= median <= p95 <= max(samples) == report["max_ms"]
    assert report["tls_version"] is None and report["cipher"] is None


@pytest.mark.broker
def test_connect_over_tls_with_the_system_python(bench_broker: BenchBroker, tmp_path: Path) -> None:
    """A copy alone in a directory, run by python3 without site packages (-S)
    and isolated from the environment (-I): the standard library only."""
    if not SYSTEM_PYTHON.exists():
        pytest.fail(f"{SYSTEM_PYTHON} is missing: the bench containers run loadgen with it")
    script = shutil.copy(LOADGEN, tmp_path / "loadgen.py")
    command = (str(SYSTEM_PYTHON), "-I", "-S", str(script))
    run = loadgen("connect", "--count", "3", *bench_broker.tls(), command=command)
    assert run.code == 0, run
    assert run.report["count"] == 3 and run.report["failures"] == 0
    assert run.report["tls_version"] in ("TLSv1.2", "TLSv1.3")
    assert isinstance(run.report["cipher"], str) and run.report["cipher"]


@pytest.mark.broker
def test_tls_13_minimum_is_negotiated(bench_broker: BenchBroker) -> None:
    run = loadgen("connect", "--count", "2", "--tls-version", "1.3", *bench_broker.tls())
    assert run.code == 0, run
    assert run.report["tls_version"] == "TLSv1.3"
    assert run.report["cipher"] in ("TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256")


@pytest.mark.broker
def test_mutual_tls_with_a_client_certificate(bench_broker: BenchBroker) -> None:
    """The session broker's mTLS listener takes the certificate's CN as the user."""
    common = ["--host", "localhost", "--port", str(bench_broker.mtls_port)]
    tls = ["--cafile", str(bench_broker.ca_file)]
    cert = ["--cert", str(bench_broker.client_cert), "--key", str(bench_broker.client_key)]
    run = loadgen("connect", "--count", "2", *common, *tls, *cert)
    assert run.code == 0, run
    assert run.report["count"] == 2
    refused = loadgen("connect", "--count", "2", *common, *tls)
    assert refused.code == 1
    assert "requires a client certificate" in str(refused.report["error"]), refused


@pytest.mark.broker
@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (("--cafile", "rogue"), "is --cafile the CA that issued the broker's certificate?"),
        (("--server-name", "127.0.0.1"), "set --server-name to a name in the broker's certificate"),
    ],
)
def test_an_unverified_broker_is_refused(
    bench_broker: BenchBroker, extra: tuple[str, str], words: str
) -> None:
    args = bench_broker.tls()
    flag, value = extra
    args[args.index(flag) + 1] = str(bench_broker.rogue_ca_file) if value == "rogue" else value
    run = loadgen("connect", "--count", "3", *args)
    assert run.code == 1
    target = f"127.0.0.1:{bench_broker.tls_port}"
    assert str(run.report["error"]).startswith(f"{target}: connect: TLS certificate verification")
    assert words in str(run.report["error"])
    assert run.report["failures"] == 1, "a verification failure stops the run"


@pytest.mark.broker
def test_wrong_password_names_the_connack_code(bench_broker: BenchBroker) -> None:
    args = ["--host", "127.0.0.1", "--port", str(bench_broker.plain_port)]
    run = loadgen("connect", "--count", "3", *args, "--username", USERNAME, "--password", "wrong")
    assert run.code == 1
    message = (
        f"127.0.0.1:{bench_broker.plain_port}: connect: "
        "CONNACK return code 5 (not authorised): the broker refused the connection"
    )
    assert run.report["error"] == message
    assert run.stderr == f"loadgen: error: {message}\n"
    assert (run.report["count"], run.report["failures"]) == (0, 1)


@pytest.mark.broker
def test_nothing_listening_is_named(bench_broker: BenchBroker) -> None:
    port = free_port()
    run = loadgen("connect", "--count", "2", "--host", "127.0.0.1", "--port", str(port))
    assert run.code == 1
    assert run.report["error"] == (
        f"127.0.0.1:{port}: connect: connection refused: nothing listens on that port"
    )


@pytest.mark.broker
@pytest.mark.parametrize("transport", ["plain", "tls"])
def test_throughput_qos1_delivers_every_message(bench_broker: BenchBroker, transport: str) -> None:
    connection = bench_broker.plain() if transport == "plain" else bench_broker.tls()
    run = loadgen("throughput", "--qos", "1", "--count", "200", "--size", "100", *connection)
    assert run.code == 0, run
    report = run.report
    counts = ("published", "acked", "received", "lost", "qos", "granted_qos", "inflight")
    assert {key: report[key] for key in counts} == {
        "published": 200,
        "acked": 200,
        "received": 200,
        "lost": 0,
        "qos": 1,
        "granted_qos": 1,
        "inflight": 20,
    }
    assert str(report["topic"]).startswith("pisec/bench/")
    assert isinstance(report["messages_per_second"], float) and report["messages_per_second"] > 0
    assert isinstance(report["elapsed_s"], float) and report["elapsed_s"] > 0


@pytest.mark.broker
def test_throughput_qos0(bench_broker: BenchBroker) -> None:
    run = loadgen("throughput", "--qos", "0", "--count", "200", *bench_broker.plain())
    assert run.code == 0, run
    report = run.report
    assert report["published"] == 200 and report["acked"] is None
    received = report["received"]
    assert isinstance(received, int) and 0 < received <= 200
    assert report["lost"] == 200 - received


@pytest.mark.broker
def test_throughput_on_a_topic_the_acl_forbids_fails(bench_broker: BenchBroker) -> None:
    """mosquitto acknowledges a forbidden QoS 1 PUBLISH and drops it."""
    args = bench_broker.plain("--topic-prefix", "elsewhere")
    run = loadgen("throughput", "--qos", "1", "--count", "10", *args)
    assert run.code == 1
    assert "none of the 10 messages came back on elsewhere/" in str(run.report["error"])
    assert (run.report["published"], run.report["received"]) == (10, 0)


def _start_loadgen(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(LOADGEN), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _start_hold(*args: str) -> subprocess.Popen[str]:
    return _start_loadgen("hold", "--hold-seconds", "60", "--max-seconds", "15", *args)


def _wait_for(ready: Path, process: subprocess.Popen[str]) -> None:
    waited = time.monotonic() + 10
    while not ready.exists() and process.poll() is None and time.monotonic() < waited:
        time.sleep(0.05)
    if not ready.exists():
        process.kill()
        pytest.fail(f"no ready file: {process.communicate()}")


def _finish_hold(process: subprocess.Popen[str]) -> Run:
    try:
        out, err = process.communicate(timeout=10)
    finally:
        process.kill()
    return _finished(process.returncode, out, err)


@pytest.mark.broker
def test_hold_until_the_release_file(bench_broker: BenchBroker, tmp_path: Path) -> None:
    ready, release = tmp_path / "ready", tmp_path / "release"
    process = _start_hold(
        "--count", "50", "--ready-file", str(ready), "--release-file", str(release),
        *bench_broker.tls(),
    )  # fmt: skip
    _wait_for(ready, process)
    assert ready.read_text() == "50\n"
    release.touch()
    run = _finish_hold(process)
    assert run.code == 0, run
    assert "READY 50\n" in run.stderr
    report = run.report
    assert (report["connected"], report["failures"], report["dropped"]) == (50, 0, 0)
    assert report["released_by"] == "release-file" and report["timed_out"] is False
    assert isinstance(report["connect_s"], float) and isinstance(report["held_s"], float)


@pytest.mark.broker
def test_connections_the_broker_closes_are_counted(tmp_path: Path) -> None:
    port = free_port()
    ready, release = tmp_path / "ready", tmp_path / "release"
    (tmp_path / "mosquitto.conf").write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\nlog_dest none\n"
    )
    with running_mosquitto(tmp_path / "mosquitto.conf", port, tmp_path / "mosquitto.log"):
        process = _start_hold(
            "--count", "5", "--ready-file", str(ready), "--release-file", str(release),
            "--host", "127.0.0.1", "--port", str(port),
        )  # fmt: skip
        _wait_for(ready, process)
    release.touch()
    run = _finish_hold(process)
    assert run.code == 1
    assert (
        run.report["error"] == f"127.0.0.1:{port}: hold: the broker closed 5 of 5 held connections"
    )
    assert (run.report["connected"], run.report["dropped"]) == (5, 5)


@pytest.mark.broker
def test_hold_stops_at_the_deadline(bench_broker: BenchBroker) -> None:
    started = time.monotonic()
    args = ["--count", "5", "--hold-seconds", "600", "--max-seconds", "1"]
    run = loadgen("hold", *args, *bench_broker.plain())
    assert time.monotonic() - started < 5
    assert run.code == 0, run
    assert run.report["timed_out"] is True and run.report["released_by"] == "deadline"
    assert run.report["connected"] == 5 and run.report["error"] is None


@pytest.mark.broker
def test_hold_refuses_a_too_low_open_files_limit(bench_broker: BenchBroker) -> None:
    """50 connections need 82 descriptors; a hard limit of 64 cannot give them."""
    low_limit = (
        "import os, resource, sys; resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64)); "
        "os.execv(sys.executable, [sys.executable, *sys.argv[1:]])"
    )
    args = ["hold", "--count", "50", "--hold-seconds", "1", *bench_broker.plain()]
    run = loadgen(*args, command=(sys.executable, "-c", low_limit, str(LOADGEN)))
    assert run.code == 1
    assert "open files limit (RLIMIT_NOFILE) is 64, hard limit 64: 82 needed" in str(
        run.report["error"]
    )
    assert run.report["connected"] == 0


def test_usage_errors_still_end_in_json() -> None:
    run = loadgen("connect", "--host", "127.0.0.1")
    assert run.code == 2
    assert "--count" in str(run.report["error"])
    input_error = loadgen("connect", "--count", "1", "--cert", "client.crt")
    assert input_error.code == 2
    assert input_error.report["error"] == "--cert needs --cafile (TLS)"


@pytest.mark.broker
def test_messages_the_broker_drops_fail_the_run_unless_loss_is_allowed(
    broker: Broker, tmp_path: Path
) -> None:
    # A queue of 2 behind 1 message in flight: a burst of 300 overflows it,
    # and mosquitto drops QoS 1 messages it has already acknowledged.
    files = write_bench_broker(broker, tmp_path)
    with files.config.open("a") as config:
        config.write("max_inflight_messages 1\nmax_queued_messages 2\n")
    plain = [
        *("--host", "127.0.0.1", "--port", str(files.plain_port)),
        *("--username", BENCH_USER, "--password-file", str(files.password_file)),
    ]
    burst = ("throughput", "--qos", "1", "--count", "300", *plain)
    with running_mosquitto(files.config, files.plain_port, files.log):
        strict = loadgen(*burst)
        allowed = loadgen(*burst, "--allow-loss")
    assert strict.code == 1
    assert "QoS 1 messages" in str(strict.report["error"])
    assert allowed.code == 0, allowed
    assert allowed.report["error"] is None
    lost = allowed.report["lost"]
    assert isinstance(lost, int) and 0 < lost < 300


@pytest.mark.broker
def test_pairs_share_the_messages_out_and_report_their_cpu(bench_broker: BenchBroker) -> None:
    run = loadgen(
        "throughput", "--qos", "1", "--count", "301", "--pairs", "3", *bench_broker.plain()
    )
    assert run.code == 0, run
    report = run.report
    assert (report["pairs"], report["published"], report["acked"]) == (3, 301, 301)
    assert (report["received"], report["lost"], report["loss_percent"]) == (301, 0, 0.0)
    assert str(report["topic"]).endswith("-{0..2}")
    assert report["rate"] is None  # unpaced
    cpu, busiest = report["loadgen_cpu_s"], report["loadgen_busiest_share"]
    assert isinstance(cpu, float) and cpu > 0
    assert isinstance(busiest, float) and 0 < busiest < 3
    delivered, offered = report["messages_per_second"], report["offered_per_second"]
    assert isinstance(delivered, float) and isinstance(offered, float)
    assert delivered > 0 and offered > 0


@pytest.mark.broker
@pytest.mark.parametrize("qos", ["0", "1"])
def test_the_offered_rate_paces_the_publishers(bench_broker: BenchBroker, qos: str) -> None:
    # 250 messages at 500 a second over two pairs: each pair's last is due at 0.496 s.
    args = ("--count", "250", "--pairs", "2", "--rate", "500", *bench_broker.plain())
    run = loadgen("throughput", "--qos", qos, *args)
    assert run.code == 0, run
    report = run.report
    assert report["rate"] == 500.0
    publish_s, offered = report["publish_s"], report["offered_per_second"]
    assert isinstance(publish_s, float) and 0.45 <= publish_s < 5
    assert isinstance(offered, float) and offered <= 560
    if qos == "1":
        assert report["received"] == 250


@pytest.mark.broker
def test_pairs_publish_only_after_the_go_file(bench_broker: BenchBroker, tmp_path: Path) -> None:
    ready, go = tmp_path / "ready", tmp_path / "go"
    command = ("throughput", "--qos", "1", "--count", "40", "--pairs", "2", *bench_broker.plain())
    files = ("--ready-file", str(ready), "--go-file", str(go))
    process = _start_loadgen(*command, *files, "--max-seconds", "3")
    _wait_for(ready, process)
    assert ready.read_text() == "2\n"
    never = _finish_hold(process)  # no go file: the time runs out, nothing published
    assert never.code == 0, never
    assert never.report["timed_out"] is True
    assert (never.report["published"], never.report["received"]) == (0, 0)

    ready.unlink()
    process = _start_loadgen(*command, *files, "--max-seconds", "10")
    _wait_for(ready, process)
    go.touch()
    started = _finish_hold(process)
    assert started.code == 0, started
    assert (started.report["published"], started.report["received"]) == (40, 40)


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (("--count", "2", "--pairs", "3"), "--pairs 3 is more than --count 2"),
        (("--count", "2", "--rate", "-1"), "--rate"),
        (("--count", "2", "--rate", "nan"), "--rate"),
        (("--count", "2", "--rate", "inf"), "--rate"),
        (("--count", "2", "--pairs", "0"), "--pairs"),
    ],
)
def test_bad_pairs_and_rates_are_usage_errors(args: tuple[str, ...], named: str) -> None:
    run = loadgen("throughput", "--qos", "1", *args, "--host", "127.0.0.1")
    assert run.code == 2, run
    assert named in str(run.report["error"])


@pytest.mark.broker
def test_a_pair_that_cannot_connect_stops_every_pair_before_it_publishes(
    bench_broker: BenchBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = loadgen_module.establish

    def establish(
        options: Options, context: object, deadline: Deadline, client_id: str
    ) -> loadgen_module.Connection:
        if client_id.endswith("-1-sub"):
            raise LoadgenError("refused for the test", fatal=True)
        return real(options, None, deadline, client_id)

    # The pairs' processes are forked from this one: they see the patch.
    monkeypatch.setattr(loadgen_module, "establish", establish)
    args = loadgen_module.build_parser().parse_args(
        ["throughput", "--qos", "1", "--count", "10", *bench_broker.plain()]
    )
    report = run_throughput(
        loadgen_module.options_from(args),
        None,
        Deadline(15),
        count=10,
        qos=1,
        size=8,
        inflight=20,
        topic_prefix="pisec/bench",
        pairs=3,
    )
    assert report.error == "pair 1: refused for the test"
    assert (report.published, report.received, report.timed_out) == (0, 0, False)


def _pair_result(**values: object) -> dict[str, object]:
    result: dict[str, object] = {
        "granted": 1,
        "published": 100,
        "acked": 100,
        "received": 100,
        "started": 10.0,
        "publish_done": 11.0,
        "last_at": 11.0,
        "cpu_s": 0.5,
        "busy_s": 1.0,
        "timed_out": False,
        "error": None,
    }
    result.update(values)
    return result


def test_the_report_of_pairs_adds_them_up_over_one_clock() -> None:
    options = Options("h", 1883, None, None, "p", 60, 10.0, None, None, None, None, "1.2")
    plan = _Plan(options, None, Deadline(5), "pisec/bench/t", (100, 100, 100), 1, b"x", 20, 0.0)
    results = {
        0: _pair_result(),
        # Started 0.5 s later, took 2 s of which 1.5 s of CPU, lost 10.
        1: _pair_result(
            started=10.5, publish_done=12.0, last_at=12.5, cpu_s=1.5, busy_s=2.0, received=90
        ),
    }
    report = _throughput_report(
        options,
        Deadline(5),
        plan,
        results,
        count=300,
        pairs=3,
        rate=0.0,
        timed_out=False,
        error=None,
        allow_loss=True,
    )
    # The third pair never reported: the run counts as timed out.
    assert report.timed_out is True
    assert (report.published, report.received, report.lost) == (200, 190, 10)
    assert report.loss_percent == 5.0
    assert report.elapsed_s == 2.5 and report.publish_s == 2.0
    assert report.messages_per_second == 76.0 and report.offered_per_second == 100.0
    assert report.loadgen_cpu_s == 2.0
    assert report.loadgen_busiest_share == 0.75
    assert report.topic == "pisec/bench/t-{0..2}"
