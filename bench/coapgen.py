"""The CoAP side of `make bench` on a simulated Pi (Table 3 of the study).

Copied onto the bench's Pis with pisec's own libcoap layer beside it
(`pisec/coaps/`), and run there with Debian's python3. Each command prints
one JSON object per line on standard output:

- `static-code PROGRAM...`: the code, load image and static data of each
  program and the libraries it links (the study's ROM and RAM), read from
  their ELF headers (also on an emulated arm64 Pi, where a running
  process's mappings are the emulator's);
- `footprint PID`: a process's memory (VmRSS, proportional and private
  set, anonymous) and the code it maps (executable file mappings, and the
  files behind them);
- `client --sample-after S -- ARGV...`: runs a client program and reads
  its footprint after S seconds;
- `latency URL`: ROUNDS new sessions (for coaps:// each a DTLS handshake),
  then REQUESTS requests one after another on one session, each with this
  process's own CPU (part of every time it measures);
- `hold URL`: SESSIONS sessions at once, each with one answered request,
  held until standard input closes (or --hold-seconds pass): the server's
  memory with that many sessions is read in between.

coaps:// uses --identity and the key in --key-file (its bytes as they are);
coap:// is plain UDP, the baseline (pisec's gateway never listens on it).
Every run is bounded by --timeout per exchange and by its counts.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import select
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pisec.coaps import libcoap

COAP_PROTO_UDP = 1
METHODS = {"get": 1, "post": 2, "put": 3}
SCHEMES = {"coap": (COAP_PROTO_UDP, 5683), "coaps": (libcoap.COAP_PROTO_DTLS, 5684)}


def emit(record: dict[str, Any]) -> None:
    print(json.dumps(record), flush=True)


# ---- Footprint -------------------------------------------------------------------


def footprint(pid: int) -> dict[str, Any]:
    """Memory and mapped code of process `pid`, in KiB.

    peak_rss_kib: VmHWM, the most it was resident since its exec;
    code_kib: the executable mappings of files (the binary's and each
    library's text, as loaded); files: each such file with its code KiB;
    file_kib: the sizes on disk of those files (static-code reads what
    they load).
    """
    proc = Path("/proc") / str(pid)
    rollup: dict[str, int] = {}
    for line in (proc / "smaps_rollup").read_text(encoding="ascii").splitlines()[1:]:
        name, _, rest = line.partition(":")
        fields = rest.split()
        if len(fields) == 2 and fields[1] == "kB":
            rollup[name.strip()] = int(fields[0])
    status = (proc / "status").read_text(encoding="utf-8", errors="replace")
    peak = next(
        (int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:")), 0
    )
    files: dict[str, int] = {}
    for line in (proc / "maps").read_text(encoding="utf-8", errors="replace").splitlines():
        parts = line.split(maxsplit=5)
        if len(parts) < 6 or "x" not in parts[1] or not parts[5].startswith("/"):
            continue
        start, end = (int(value, 16) for value in parts[0].split("-"))
        files[parts[5]] = files.get(parts[5], 0) + (end - start) // 1024
    file_kib = 0
    for path in files:
        with contextlib.suppress(OSError):
            file_kib += os.stat(path).st_size // 1024
    return {
        "rss_kib": rollup.get("Rss", 0),
        "peak_rss_kib": peak,
        "pss_kib": rollup.get("Pss", 0),
        "private_kib": rollup.get("Private_Clean", 0) + rollup.get("Private_Dirty", 0),
        "anonymous_kib": rollup.get("Anonymous", 0),
        "code_kib": sum(files.values()),
        "file_kib": file_kib,
        "files": dict(sorted(files.items())),
    }


def run_client(argv: Sequence[str], sample_after: float, timeout: float) -> dict[str, Any]:
    """Run a client program and read its footprint while it runs (its peak
    RSS too: VmHWM counts from its exec, unlike the rusage of a child that
    was forked from this process)."""
    with tempfile.TemporaryFile() as output:
        process = subprocess.Popen(list(argv), stdout=output, stderr=subprocess.STDOUT)
        time.sleep(sample_after)
        sample = footprint(process.pid) if process.poll() is None else None
        try:
            code = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            code = process.wait()
        output.seek(0)
        text = output.read().decode("utf-8", "replace")
    return {
        "argv0": os.path.basename(argv[0]),
        "exit": code,
        "sample": sample,
        "output": text[-400:],
    }


# ---- Code on disk --------------------------------------------------------------

PT_LOAD = 1
PF_X = 1
PF_W = 2


def elf_sizes(path: str) -> tuple[int, int, int]:
    """What an ELF file loads, read from its program headers without
    running it (any architecture), in bytes:
    - code: the memory size of its PT_LOAD segments with PF_X;
    - load image: the file bytes of every PT_LOAD segment (code, read-only
      data and initial data: what a device's flash holds of a program, the
      study's ROM);
    - static data: the memory size of its writable PT_LOAD segments (data
      and bss: what the study's RAM counts, from `size` of the firmware)."""
    with open(path, "rb") as elf:
        head = elf.read(64)
        if head[:4] != b"\x7fELF" or head[4] not in (1, 2) or head[5] not in (1, 2):
            raise ValueError(f"{path}: not an ELF file")
        wide, order = head[4] == 2, "<" if head[5] == 1 else ">"
        if wide:
            phoff, phentsize, phnum = (
                struct.unpack_from(order + "Q", head, 0x20)[0],
                *struct.unpack_from(order + "HH", head, 0x36),
            )
        else:
            phoff, phentsize, phnum = (
                struct.unpack_from(order + "I", head, 0x1C)[0],
                *struct.unpack_from(order + "HH", head, 0x2A),
            )
        elf.seek(phoff)
        table = elf.read(phentsize * phnum)
    if len(table) < phentsize * phnum or phentsize < (56 if wide else 32):
        raise ValueError(f"{path}: its program headers are cut short")
    code = image = data = 0
    for index in range(phnum):
        entry = table[index * phentsize : (index + 1) * phentsize]
        if wide:
            kind, flags = struct.unpack_from(order + "II", entry, 0)
            filesz, memsz = struct.unpack_from(order + "QQ", entry, 32)
        else:
            kind = struct.unpack_from(order + "I", entry, 0)[0]
            filesz, memsz, flags = struct.unpack_from(order + "III", entry, 16)
        if kind == PT_LOAD:
            image += filesz
            if flags & PF_X:
                code += memsz
            if flags & PF_W:
                data += memsz
    return code, image, data


def linked(program: str) -> list[str]:
    """The program and the libraries the dynamic loader maps for it (ldd)."""
    path = shutil.which(program) or program
    out = subprocess.run(
        ["ldd", path], capture_output=True, text=True, check=True, timeout=120
    ).stdout
    files = [path]
    for line in out.splitlines():
        words = line.split()
        target = words[2] if len(words) >= 3 and words[1] == "=>" else words[0] if words else ""
        if target.startswith("/"):
            files.append(os.path.realpath(target))
    return files


def static_code(programs: Sequence[str]) -> dict[str, Any]:
    """For each program, with the libraries it links: code, load image and
    static data (KiB, see elf_sizes), in total and per file."""
    result: dict[str, Any] = {"arch": os.uname().machine, "programs": {}}
    for program in programs:
        files = {
            path: dict(zip(("code_kib", "image_kib", "data_kib"), elf_sizes(path), strict=True))
            for path in linked(program)
        }
        result["programs"][program] = {
            key: round(sum(sizes[key] for sizes in files.values()) / 1024, 1)
            for key in ("code_kib", "image_kib", "data_kib")
        } | {
            "files": {
                path: {key: round(value / 1024, 1) for key, value in sizes.items()}
                for path, sizes in sorted(files.items())
            }
        }
    return result


# ---- Sessions ----------------------------------------------------------------------


@dataclass
class Session:
    pointer: int
    handshake_ms: float


class Sessions:
    """Client sessions to one server, all in one libcoap context."""

    def __init__(
        self, library: libcoap.Library, url: str, identity: bytes, key: bytes, timeout: float
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in SCHEMES or not parts.hostname:
            raise SystemExit(f"coapgen: {url}: not a coap:// or coaps:// URL with a host")
        self.proto, default_port = SCHEMES[parts.scheme]
        self.server = libcoap.address(parts.hostname, parts.port or default_port)
        self.path = [segment.encode() for segment in parts.path.split("/") if segment]
        self.timeout = timeout
        self.dll = library.dll
        self.dll.coap_new_client_session.restype = ctypes.c_void_p
        self.dll.coap_new_client_session.argtypes = [
            ctypes.c_void_p,
            ctypes.c_void_p,
            ctypes.POINTER(libcoap.Address),
            ctypes.c_int,
        ]
        self.context = self.dll.coap_new_context(None)
        if not self.context:
            raise SystemExit("coapgen: coap_new_context failed")
        self.events: dict[int, list[int]] = {}
        self.answered: dict[int, list[int]] = {}
        self._event_handler = libcoap.EventHandler(self._on_event)
        self._response_handler = libcoap.ResponseHandler(self._on_response)
        self.dll.coap_register_event_handler(self.context, self._event_handler)
        self.dll.coap_register_response_handler(self.context, self._response_handler)
        self._identity = ctypes.create_string_buffer(identity, len(identity))
        self._key = ctypes.create_string_buffer(key, len(key))
        self.sessions: list[Session] = []
        # The protocol and suite of the first DTLS session, from GnuTLS.
        self.negotiated: tuple[str | None, str | None] = (None, None)
        self._client = libcoap.Client(library) if self.proto != COAP_PROTO_UDP else None

    def _on_event(self, session: int | None, event: int) -> int:
        self.events.setdefault(session or 0, []).append(event)
        return 0

    def _on_response(
        self, session: int | None, _sent: int | None, received: int | None, _mid: int
    ) -> int:
        self.answered.setdefault(session or 0, []).append(self.dll.coap_pdu_get_code(received))
        return libcoap.COAP_RESPONSE_OK

    def _process(self, until: Any) -> bool:
        deadline = time.monotonic() + self.timeout
        while not until():
            if time.monotonic() > deadline:
                return False
            self.dll.coap_io_process(self.context, 10)
        return True

    def open(self) -> Session | None:
        """A new session; for DTLS, after its handshake (None if it failed)."""
        started = time.monotonic()
        if self.proto == COAP_PROTO_UDP:
            pointer = self.dll.coap_new_client_session(
                self.context, None, ctypes.byref(self.server), self.proto
            )
        else:
            setup = libcoap.Cpsk()
            setup.version = libcoap.COAP_DTLS_CPSK_SETUP_VERSION
            setup.psk_info.identity = libcoap.BinConst(
                len(self._identity), ctypes.cast(self._identity, ctypes.POINTER(ctypes.c_uint8))
            )
            setup.psk_info.key = libcoap.BinConst(
                len(self._key), ctypes.cast(self._key, ctypes.POINTER(ctypes.c_uint8))
            )
            pointer = self.dll.coap_new_client_session_psk2(
                self.context, None, ctypes.byref(self.server), self.proto, ctypes.byref(setup)
            )
        if not pointer:
            return None
        # A new session may take the address of one released before it.
        self.events.pop(pointer, None)
        self.answered.pop(pointer, None)
        if self.proto != COAP_PROTO_UDP and not self._process(
            lambda: (
                self.events.get(pointer)
                or self.dll.coap_session_get_state(pointer) == libcoap.SESSION_ESTABLISHED
            )
        ):
            self.dll.coap_session_release(pointer)
            return None
        if self.dll.coap_session_get_state(pointer) != libcoap.SESSION_ESTABLISHED:
            self.dll.coap_session_release(pointer)
            return None
        session = Session(pointer, (time.monotonic() - started) * 1000)
        if self._client is not None and self.negotiated == (None, None):
            self.negotiated = self._client.negotiated(pointer)
        self.sessions.append(session)
        return session

    def request(self, session: Session, method: int, payload: bytes) -> tuple[str, float] | None:
        """One confirmable request and its answer's code and time."""
        dll = self.dll
        pdu = dll.coap_new_pdu(libcoap.COAP_MESSAGE_CON, method, session.pointer)
        token_length = ctypes.c_size_t(0)
        token = ctypes.create_string_buffer(8)
        dll.coap_session_new_token(session.pointer, ctypes.byref(token_length), token)
        dll.coap_add_token(pdu, token_length.value, token)
        for segment in self.path:
            dll.coap_add_option(pdu, libcoap.COAP_OPTION_URI_PATH, len(segment), segment)
        if payload:
            dll.coap_add_data(pdu, len(payload), payload)
        answers = self.answered.setdefault(session.pointer, [])
        before = len(answers)
        sent = time.monotonic()
        if dll.coap_send(session.pointer, pdu) < 0:
            return None
        if not self._process(lambda: len(answers) > before):
            return None
        return libcoap.dotted(answers[before]), (time.monotonic() - sent) * 1000

    def release(self, session: Session) -> None:
        self.dll.coap_session_release(session.pointer)
        self.sessions.remove(session)
        self.events.pop(session.pointer, None)
        self.answered.pop(session.pointer, None)

    def idle(self, seconds: float) -> None:
        self.dll.coap_io_process(self.context, int(seconds * 1000))

    def close(self) -> None:
        for session in self.sessions:
            self.dll.coap_session_release(session.pointer)
        # Let the close_notify alerts go out.
        for _ in range(5):
            self.dll.coap_io_process(self.context, 10)
        self.dll.coap_free_context(self.context)


def summary(values: Sequence[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)
    return {
        "n": len(ordered),
        "median": round(statistics.median(ordered), 3),
        "p90": round(ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))], 3),
        "min": round(ordered[0], 3),
    }


def latency(
    sessions: Sessions, rounds: int, requests: int, method: int, payload: bytes
) -> dict[str, Any]:
    """ROUNDS new sessions with one request each, then REQUESTS requests on
    one session; with this process's own CPU for each, because in a
    request-then-answer loop the client's time is part of every figure."""
    handshakes: list[float] = []
    first: list[float] = []
    codes: dict[str, int] = {}
    failures = 0
    cpu_started = time.process_time()
    for _ in range(rounds):
        session = sessions.open()
        answer = sessions.request(session, method, payload) if session else None
        if session is None or answer is None:
            failures += 1
            continue
        handshakes.append(session.handshake_ms)
        first.append(session.handshake_ms + answer[1])
        codes[answer[0]] = codes.get(answer[0], 0) + 1
        sessions.release(session)
    session_cpu = time.process_time() - cpu_started
    session = sessions.open() if requests else None
    times: list[float] = []
    cpu_started = time.process_time()
    if requests and session is None:
        failures += 1
    for _ in range(requests if session else 0):
        answer = sessions.request(session, method, payload) if session else None
        if answer is None:
            failures += 1
            continue
        times.append(answer[1])
        codes[answer[0]] = codes.get(answer[0], 0) + 1
    request_cpu = time.process_time() - cpu_started
    return {
        "handshake_ms": summary(handshakes) if sessions.proto != COAP_PROTO_UDP else {},
        "first_answer_ms": summary(first),
        "request_ms": summary(times),
        "client_cpu_us_per_session": round(session_cpu * 1e6 / rounds, 1) if rounds else None,
        "client_cpu_us_per_request": round(request_cpu * 1e6 / len(times), 1) if times else None,
        "codes": codes,
        "failures": failures,
        "protocol": sessions.negotiated[0],
        "suite": sessions.negotiated[1],
    }


def hold(sessions: Sessions, count: int, method: int, payload: bytes, seconds: float) -> None:
    failures = 0
    codes: dict[str, int] = {}
    for _ in range(count):
        session = sessions.open()
        answer = sessions.request(session, method, payload) if session else None
        if answer is None:
            failures += 1
        else:
            codes[answer[0]] = codes.get(answer[0], 0) + 1
    emit(
        {
            "ready": len(sessions.sessions),
            "failures": failures,
            "codes": codes,
            "suite": sessions.negotiated[1],
        }
    )
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        readable, _, _ = select.select([sys.stdin], [], [], 0)
        if readable and not sys.stdin.readline():
            break
        sessions.idle(0.1)
    emit({"released": len(sessions.sessions)})


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="coapgen", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    command = commands.add_parser("footprint")
    command.add_argument("pid", type=int)
    command = commands.add_parser("static-code")
    command.add_argument("programs", nargs="+")
    command = commands.add_parser("client")
    command.add_argument("--sample-after", type=float, default=1.5)
    command.add_argument("--timeout", type=float, default=30.0)
    command.add_argument("argv", nargs=argparse.REMAINDER)
    for name in ("latency", "hold"):
        command = commands.add_parser(name)
        command.add_argument("url")
        command.add_argument("--identity", default="")
        command.add_argument("--key-file", type=Path)
        command.add_argument("--method", choices=sorted(METHODS), default="get")
        command.add_argument("--payload", default="")
        command.add_argument("--timeout", type=float, default=5.0)
        if name == "latency":
            command.add_argument("--rounds", type=int, default=30)
            command.add_argument("--requests", type=int, default=200)
        else:
            command.add_argument("--sessions", type=int, default=50)
            command.add_argument("--hold-seconds", type=float, default=120.0)
    args = parser.parse_args(argv)

    if args.command == "footprint":
        emit(footprint(args.pid))
        return 0
    if args.command == "static-code":
        emit(static_code(args.programs))
        return 0
    if args.command == "client":
        program = [part for part in args.argv if part != "--"]
        if not program:
            parser.error("client: the program to run follows --")
        emit(run_client(program, args.sample_after, args.timeout))
        return 0
    key = args.key_file.read_bytes().strip() if args.key_file else b""
    if args.url.startswith("coaps:") and not (args.identity and key):
        parser.error(f"{args.command}: coaps:// needs --identity and --key-file")
    library = libcoap.Library()
    sessions = Sessions(library, args.url, args.identity.encode(), key, args.timeout)
    method, payload = METHODS[args.method], args.payload.encode()
    try:
        if args.command == "latency":
            if not 0 <= args.rounds <= 1000 or not 0 <= args.requests <= 10000:
                parser.error("latency: --rounds 0 to 1000, --requests 0 to 10000")
            emit(latency(sessions, args.rounds, args.requests, method, payload))
        else:
            if not 1 <= args.sessions <= 1000 or not 0 < args.hold_seconds <= 600:
                parser.error("hold: --sessions 1 to 1000, --hold-seconds up to 600")
            hold(sessions, args.sessions, method, payload, args.hold_seconds)
    finally:
        sessions.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
