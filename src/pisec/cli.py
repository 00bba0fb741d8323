"""The `pisec` command: parse, call, render. No logic lives here.

Exit codes: 0 every check passed, 1 a check failed, 2 usage or input error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn, TextIO

from cryptography.utils import CryptographyDeprecationWarning

from pisec import __version__
from pisec.certfile import load_items
from pisec.errors import EXIT_CHECK_FAILED, EXIT_OK, EXIT_USAGE, PisecError
from pisec.facts import describe
from pisec.fleet import (
    FleetHost,
    assess_bundles,
    read_inventory,
    read_over_ssh,
    survey,
)
from pisec.probe import (
    MQTT_VERSIONS,
    ProbeOptions,
    ProbeTarget,
    probe,
    read_password_file,
    read_password_stream,
)
from pisec.probe_coaps import CoapsProbeOptions, CoapsTarget, probe_coaps, read_psk_file
from pisec.render import (
    Style,
    fleet_json,
    probe_json,
    render_fleet,
    render_probe,
    render_text,
    render_verify,
    verify_json,
)
from pisec.verify import VerifyOptions, parse_time, verify

PASSWORD_ENV = "PISEC_MQTT_PASSWORD"


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors follow pisec's one-line format and exit 2."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"pisec: error: {self.prog}: {message}\n")
        raise SystemExit(EXIT_USAGE)


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="pisec", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--version", action="version", version=f"pisec {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    inspect_parser = commands.add_parser(
        "inspect",
        help="show certificates and CSRs like `openssl x509 -text`",
        description="Read PEM (one or many blocks) or DER certificates and CSRs and show "
        "every field, with days left, SHA-256 fingerprint, CA and self-signed first.",
    )
    inspect_parser.add_argument("files", nargs="+", type=Path, metavar="FILE")
    inspect_parser.add_argument("--json", action="store_true", help="machine-readable output")

    verify_parser = commands.add_parser(
        "verify",
        help="check a certificate against a CA, a key, a host name and a CRL",
        description="Chain to the CA (intermediates may follow the leaf in CERT), key "
        "match, host in the SAN, validity at a time, TLS purpose, and revocation.",
    )
    verify_parser.add_argument("cert", type=Path, metavar="CERT", help="certificate (PEM/DER)")
    verify_parser.add_argument("--ca", required=True, type=Path, help="CA certificate(s)")
    verify_parser.add_argument("--key", type=Path, help="private key that should match")
    verify_parser.add_argument("--host", help="DNS name or IP address clients use")
    verify_parser.add_argument("--crl", type=Path, help="CRL of the issuing CA")
    verify_parser.add_argument("--at", help="ISO 8601 time to check validity at (default: now)")
    verify_parser.add_argument(
        "--client", action="store_true", help="check for TLS client, not server, use"
    )
    verify_parser.add_argument("--json", action="store_true", help="machine-readable output")

    fleet_parser = commands.add_parser(
        "fleet", help="look at every host of an Ansible inventory over SSH"
    )
    fleet_commands = fleet_parser.add_subparsers(
        dest="fleet_command", required=True, parser_class=_Parser
    )
    certs_parser = fleet_commands.add_parser(
        "certs",
        help="list the certificates pisec manages on every host, and what is due",
        description="Connect to every broker and client Pi of the inventory over SSH, in "
        "parallel, and list each certificate and CRL pisec manages with serial, days left "
        "and whether it is due, then the bundles of the devices Ansible cannot reach (read "
        "on this host). Exits 1 when anything is due, expired or unreachable.",
    )
    certs_parser.add_argument("-i", "--inventory", required=True, help="Ansible inventory")
    certs_parser.add_argument("--due", action="store_true", help="show only what needs action")
    certs_parser.add_argument("--json", action="store_true", help="machine-readable output")
    certs_parser.add_argument(
        "--timeout", type=float, default=10.0, help="SSH connect timeout in seconds"
    )
    certs_parser.add_argument(
        "--known-hosts",
        type=Path,
        help="extra known_hosts file; unknown host keys are refused, never accepted",
    )
    certs_parser.add_argument(
        "--fraction-left",
        type=float,
        default=1 / 3,
        help="due when less than this share of the lifetime is left (default 1/3)",
    )
    certs_parser.add_argument(
        "--crl-days",
        type=int,
        help="a CRL is due with fewer days left (default: the inventory's "
        "pisec_ca_crl_renew_before_days, else 10)",
    )
    certs_parser.add_argument(
        "--bundle-dir",
        type=Path,
        help="where the unmanaged devices' bundles are (default: the inventory's "
        "pisec_ca_device_bundle_dir)",
    )

    probe_parser = commands.add_parser(
        "probe",
        help="TLS handshake and MQTT round trip against a live broker",
        description="Connect over TLS, check the served chain and host name, then CONNECT, "
        "SUBSCRIBE and PUBLISH on a unique topic and time the round trip.",
    )
    probe_parser.add_argument(
        "url",
        help="mqtts://HOST[:PORT] (port 8883 by default) or coaps://HOST[:PORT] (5684)",
    )
    probe_parser.add_argument(
        "--ca", type=Path, help="CA certificate (PEM); mqtts, and coaps with --mqtt-url"
    )
    probe_parser.add_argument("--cert", type=Path, help="client certificate (PEM)")
    probe_parser.add_argument("--key", type=Path, help="client private key (PEM)")
    probe_parser.add_argument("--username", help="MQTT user name")
    probe_parser.add_argument(
        "--password-file",
        type=Path,
        help=f"file whose first line is the password; - reads it from standard input "
        f"(or set {PASSWORD_ENV})",
    )
    probe_parser.add_argument("--timeout", type=float, default=10.0, help="seconds (default 10)")
    probe_parser.add_argument(
        "--mqtt-version",
        choices=sorted(MQTT_VERSIONS),
        default="5",
        help="MQTT protocol version to speak (default 5)",
    )
    probe_parser.add_argument(
        "--psk-identity", help="coaps: the device's identity (its MQTT identity too)"
    )
    probe_parser.add_argument(
        "--psk-file", type=Path, help="coaps: file whose bytes are the pre-shared key"
    )
    probe_parser.add_argument(
        "--psk-format",
        choices=["text", "raw"],
        default="text",
        help="coaps: text, the file's bytes are the key (default); raw, it holds the key in hex",
    )
    probe_parser.add_argument(
        "--topic", help="coaps: publish here (default pisec/probe/IDENTITY/coaps-RANDOM)"
    )
    probe_parser.add_argument(
        "--mqtt-url",
        help="coaps: also subscribe on this broker (mqtts://HOST[:PORT], with --ca and "
        "--username/--password-file or --cert/--key) and confirm the message arrived",
    )
    probe_parser.add_argument("--json", action="store_true", help="machine-readable output")
    return parser


def _emit(as_json: bool, data: Callable[[], Any], render: Callable[[], None], out: TextIO) -> None:
    """JSON for machines, the renderer's table for people."""
    if as_json:
        json.dump(data(), out, indent=2)
        out.write("\n")
    else:
        render()


def _run_inspect(args: argparse.Namespace, out: TextIO) -> int:
    facts = [describe(item) for path in args.files for item in load_items(path)]
    if args.json:
        json.dump([fact.to_json() for fact in facts], out, indent=2)
        out.write("\n")
        return EXIT_OK
    style = Style(enabled=out.isatty() and "NO_COLOR" not in os.environ)
    for number, fact in enumerate(facts):
        if number:
            out.write("\n")
        render_text(fact, out, style)
    return EXIT_OK


def _run_verify(args: argparse.Namespace, out: TextIO) -> int:
    options = VerifyOptions(
        ca_file=args.ca,
        cert_file=args.cert,
        key_file=args.key,
        host=args.host,
        crl_file=args.crl,
        at=parse_time(args.at) if args.at else None,
        client=args.client,
    )
    result = verify(options)
    _emit(args.json, lambda: verify_json(result), lambda: render_verify(result, out), out)
    return EXIT_OK if result.ok else EXIT_CHECK_FAILED


def _run_fleet_certs(args: argparse.Namespace, out: TextIO) -> int:
    if not 0 < args.fraction_left < 1:
        raise PisecError("--fraction-left", f"must be between 0 and 1 (is {args.fraction_left})")
    if args.known_hosts is not None and not args.known_hosts.is_file():
        raise PisecError(str(args.known_hosts), "no such known_hosts file")
    if args.crl_days is not None and args.crl_days < 1:
        raise PisecError("--crl-days", f"must be at least 1 (is {args.crl_days})")
    fleet = read_inventory(args.inventory)
    hosts = fleet.hosts
    crl_days = fleet.crl_days if args.crl_days is None else args.crl_days
    bundle_dir = args.bundle_dir or fleet.bundle_dir
    if fleet.bundles and bundle_dir is None:
        raise PisecError(
            args.inventory,
            "pisec_ca_device_bundle_dir is a template pisec cannot read here; give --bundle-dir",
        )
    known_hosts: Path | None = args.known_hosts

    def reader(host: FleetHost, timeout: float) -> str:
        return read_over_ssh(host, timeout, known_hosts)

    show_progress = sys.stderr.isatty() and not args.json

    def progress(text: str) -> None:
        sys.stderr.write(f"\rchecking {len(hosts)} hosts over SSH: {text:<40}")
        sys.stderr.flush()

    reports = survey(
        hosts,
        timeout=args.timeout,
        fraction_left=args.fraction_left,
        crl_days=crl_days,
        progress=progress if show_progress else None,
        reader=reader,
    )
    if bundle_dir is not None:
        reports += assess_bundles(bundle_dir, fleet.bundles, datetime.now(UTC), args.fraction_left)
    if show_progress:
        sys.stderr.write("\r" + " " * 80 + "\r")
    needs_action = any(not r.reachable or any(i.due for i in r.items) for r in reports)
    _emit(
        args.json,
        lambda: [fleet_json(report, args.due) for report in reports],
        lambda: render_fleet(reports, args.due, out),
        out,
    )
    return EXIT_CHECK_FAILED if needs_action else EXIT_OK


def _read_password(args: argparse.Namespace) -> str | None:
    if args.password_file == Path("-"):
        return read_password_stream(sys.stdin, "standard input")
    if args.password_file is not None:
        return read_password_file(args.password_file)
    return os.environ.get(PASSWORD_ENV)


def _run_probe(args: argparse.Namespace, out: TextIO) -> int:
    if args.timeout <= 0:
        raise PisecError("--timeout", f"must be positive (is {args.timeout})")
    if args.url.startswith("coaps:"):
        return _run_probe_coaps(args, out)
    for option in ("psk_identity", "psk_file", "topic", "mqtt_url"):
        if getattr(args, option) is not None:
            raise PisecError(f"--{option.replace('_', '-')}", "is for coaps:// URLs")
    if args.ca is None:
        raise PisecError("--ca", "mqtts:// needs the CA certificate that signed the broker's")
    options = _mqtt_options(args, args.url)
    result = probe(options)
    _emit(args.json, lambda: probe_json(result), lambda: render_probe(result, out), out)
    return EXIT_OK if result.ok else EXIT_CHECK_FAILED


def _run_probe_coaps(args: argparse.Namespace, out: TextIO) -> int:
    if args.psk_identity is None or args.psk_file is None:
        raise PisecError("--psk-identity", "coaps:// needs --psk-identity and --psk-file")
    mqtt = None
    if args.mqtt_url is not None:
        if args.ca is None:
            raise PisecError("--ca", "--mqtt-url needs the broker's CA certificate")
        mqtt = _mqtt_options(args, args.mqtt_url)
    options = CoapsProbeOptions(
        target=CoapsTarget.parse(args.url),
        identity=args.psk_identity,
        key=read_psk_file(args.psk_file, args.psk_format),
        topic=args.topic,
        timeout=args.timeout,
        mqtt=mqtt,
    )
    result = probe_coaps(options)
    _emit(args.json, lambda: probe_json(result), lambda: render_probe(result, out), out)
    return EXIT_OK if result.ok else EXIT_CHECK_FAILED


def _mqtt_options(args: argparse.Namespace, url: str) -> ProbeOptions:
    password = _read_password(args)
    if password is not None and args.username is None:
        raise PisecError("--username", "a password was given without a user name")
    return ProbeOptions(
        target=ProbeTarget.parse(url),
        ca_file=args.ca,
        cert_file=args.cert,
        key_file=args.key,
        username=args.username,
        password=password,
        timeout=args.timeout,
        mqtt_version=args.mqtt_version,
    )


def main(argv: Sequence[str] | None = None) -> int:
    # Real-world CA bundles hold certificates cryptography frowns upon (a zero
    # serial); pisec reports on them instead of printing library warnings.
    warnings.filterwarnings("ignore", category=CryptographyDeprecationWarning)
    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code) if isinstance(exc.code, int) else EXIT_USAGE
    try:
        if args.command == "inspect":
            return _run_inspect(args, sys.stdout)
        if args.command == "verify":
            return _run_verify(args, sys.stdout)
        if args.command == "probe":
            return _run_probe(args, sys.stdout)
        if args.command == "fleet" and args.fleet_command == "certs":
            return _run_fleet_certs(args, sys.stdout)
    except PisecError as exc:
        sys.stderr.write(f"pisec: error: {exc.what}: {exc.why}\n")
        return EXIT_USAGE
    except KeyboardInterrupt:
        sys.stderr.write("pisec: error: interrupted\n")
        return EXIT_USAGE
    except BrokenPipeError:
        # The reader (`| head`) stopped early; it got what it asked for. Point
        # stdout at /dev/null so that the interpreter's final flush is quiet.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
    parser.error(f"unknown command {args.command!r}")


if __name__ == "__main__":
    raise SystemExit(main())
