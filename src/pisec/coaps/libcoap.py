"""Debian's libcoap3 (GnuTLS backend) through ctypes: DTLS with pre-shared
keys, for the CoAPs gateway (a server) and `pisec probe coaps://` (a client).

The DTLS is libcoap's and GnuTLS's; this module declares the few functions
pisec calls, as the libcoap 4.3 headers of Debian bookworm (4.3.1) and
trixie (4.3.4) define them, and refuses any other library at load time.

What the server does, and what it never does:
- it listens on DTLS endpoints only: no plain CoAP socket exists;
- the identity callback answers with the key of a known identity and with
  NULL for any other, which fails the handshake (libcoap's own example
  server falls back to a default key there);
- the context's default key, which libcoap requires, is 16 random bytes
  made at start that no device holds and that never leave the process;
- libcoap logs at WARNING, the DTLS library at ERROR: neither prints a key
  at those levels (libcoap's example server prints keys at INFO).
"""

from __future__ import annotations

import ctypes
import os
import socket
import struct
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_to_bytes

LIBRARY = "libcoap-3-gnutls.so.3"
SUPPORTED = ("4.3.1", "4.3.2", "4.3.3", "4.3.4")

COAP_PROTO_DTLS = 2
COAP_TLS_LIBRARY_GNUTLS = 3
COAP_MESSAGE_CON = 0
COAP_OPTION_URI_PATH = 11
COAP_RESPONSE_OK = 1
COAP_LOG_WARNING = 4
COAP_LOG_ERROR = 3
COAP_DTLS_SPSK_SETUP_VERSION = 1
COAP_DTLS_CPSK_SETUP_VERSION = 1
EVENT_DTLS_CLOSED = 0x0000
EVENT_DTLS_ERROR = 0x0200
SESSION_CLOSED = 0x2002
SESSION_ESTABLISHED = 4

GET, POST, PUT, DELETE = 1, 2, 3, 4


def code(text: str) -> int:
    """A CoAP code from its dotted form: '2.04' is 0x44."""
    klass, detail = text.split(".")
    return (int(klass) << 5) | int(detail)


def dotted(value: int) -> str:
    return f"{value >> 5}.{value & 0x1F:02d}"


class CoapError(Exception):
    """libcoap is missing, of a version pisec does not know, or refused a call."""


class BinConst(ctypes.Structure):
    _fields_ = [("length", ctypes.c_size_t), ("s", ctypes.POINTER(ctypes.c_uint8))]


class CoapString(ctypes.Structure):
    _fields_ = [("length", ctypes.c_size_t), ("s", ctypes.POINTER(ctypes.c_uint8))]


class TlsVersion(ctypes.Structure):
    _fields_ = [
        ("version", ctypes.c_uint64),
        ("type", ctypes.c_int),
        ("built_version", ctypes.c_uint64),
    ]


class Address(ctypes.Structure):
    """coap_address_t on Linux: socklen_t size, then a union of sockaddr,
    sockaddr_in and sockaddr_in6 (28 bytes, 4-byte aligned)."""

    _fields_ = [("size", ctypes.c_uint32), ("addr", ctypes.c_uint8 * 28)]


IdCallback = ctypes.CFUNCTYPE(
    ctypes.c_void_p, ctypes.POINTER(BinConst), ctypes.c_void_p, ctypes.c_void_p
)
SniCallback = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_void_p)
IhCallback = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p)
MethodHandler = ctypes.CFUNCTYPE(
    None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p
)
ResponseHandler = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int
)
EventHandler = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_int)
LogHandler = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_char_p)


class SpskInfo(ctypes.Structure):
    _fields_ = [("hint", BinConst), ("key", BinConst)]


class Spsk(ctypes.Structure):
    """coap_dtls_spsk_t (4.3.1 to 4.3.4: version, 7 reserved bytes, then
    the callbacks and the default hint and key)."""

    _fields_ = [
        ("version", ctypes.c_uint8),
        ("reserved", ctypes.c_uint8 * 7),
        ("validate_id_call_back", IdCallback),
        ("id_call_back_arg", ctypes.c_void_p),
        ("validate_sni_call_back", SniCallback),
        ("sni_call_back_arg", ctypes.c_void_p),
        ("psk_info", SpskInfo),
    ]


class CpskInfo(ctypes.Structure):
    _fields_ = [("identity", BinConst), ("key", BinConst)]


class Cpsk(ctypes.Structure):
    _fields_ = [
        ("version", ctypes.c_uint8),
        ("reserved", ctypes.c_uint8 * 7),
        ("validate_ih_call_back", IhCallback),
        ("ih_call_back_arg", ctypes.c_void_p),
        ("client_sni", ctypes.c_char_p),
        ("psk_info", CpskInfo),
    ]


_SIGNATURES: dict[str, tuple[Any, list[Any]]] = {
    "coap_startup": (None, []),
    "coap_cleanup": (None, []),
    "coap_package_version": (ctypes.c_char_p, []),
    "coap_get_tls_library_version": (ctypes.POINTER(TlsVersion), []),
    "coap_set_log_level": (None, [ctypes.c_int]),
    "coap_dtls_set_log_level": (None, [ctypes.c_int]),
    "coap_set_log_handler": (None, [LogHandler]),
    "coap_new_context": (ctypes.c_void_p, [ctypes.c_void_p]),
    "coap_free_context": (None, [ctypes.c_void_p]),
    "coap_context_set_psk2": (ctypes.c_int, [ctypes.c_void_p, ctypes.POINTER(Spsk)]),
    "coap_context_set_max_idle_sessions": (None, [ctypes.c_void_p, ctypes.c_uint]),
    "coap_context_set_session_timeout": (None, [ctypes.c_void_p, ctypes.c_uint]),
    "coap_context_set_max_handshake_sessions": (None, [ctypes.c_void_p, ctypes.c_uint]),
    "coap_new_endpoint": (
        ctypes.c_void_p,
        [ctypes.c_void_p, ctypes.POINTER(Address), ctypes.c_int],
    ),
    "coap_resource_unknown_init2": (ctypes.c_void_p, [MethodHandler, ctypes.c_int]),
    "coap_register_handler": (None, [ctypes.c_void_p, ctypes.c_int, MethodHandler]),
    "coap_add_resource": (None, [ctypes.c_void_p, ctypes.c_void_p]),
    "coap_io_process": (ctypes.c_int, [ctypes.c_void_p, ctypes.c_uint32]),
    "coap_session_get_psk_identity": (ctypes.POINTER(BinConst), [ctypes.c_void_p]),
    "coap_session_get_tls": (ctypes.c_void_p, [ctypes.c_void_p, ctypes.POINTER(ctypes.c_int)]),
    "coap_session_release": (None, [ctypes.c_void_p]),
    "coap_get_uri_path": (ctypes.POINTER(CoapString), [ctypes.c_void_p]),
    "coap_delete_string": (None, [ctypes.POINTER(CoapString)]),
    "coap_get_data": (
        ctypes.c_int,
        [
            ctypes.c_void_p,
            ctypes.POINTER(ctypes.c_size_t),
            ctypes.POINTER(ctypes.POINTER(ctypes.c_uint8)),
        ],
    ),
    "coap_pdu_get_code": (ctypes.c_int, [ctypes.c_void_p]),
    "coap_pdu_set_code": (None, [ctypes.c_void_p, ctypes.c_int]),
    "coap_add_data": (ctypes.c_int, [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p]),
    "coap_new_client_session_psk2": (
        ctypes.c_void_p,
        [
            ctypes.c_void_p,
            ctypes.c_void_p,
            ctypes.POINTER(Address),
            ctypes.c_int,
            ctypes.POINTER(Cpsk),
        ],
    ),
    "coap_new_pdu": (ctypes.c_void_p, [ctypes.c_int, ctypes.c_int, ctypes.c_void_p]),
    "coap_add_option": (
        ctypes.c_size_t,
        [ctypes.c_void_p, ctypes.c_uint16, ctypes.c_size_t, ctypes.c_char_p],
    ),
    "coap_send": (ctypes.c_int, [ctypes.c_void_p, ctypes.c_void_p]),
    "coap_register_response_handler": (None, [ctypes.c_void_p, ResponseHandler]),
    "coap_register_event_handler": (None, [ctypes.c_void_p, EventHandler]),
    "coap_session_new_token": (
        None,
        [ctypes.c_void_p, ctypes.POINTER(ctypes.c_size_t), ctypes.c_char_p],
    ),
    "coap_add_token": (ctypes.c_int, [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p]),
    "coap_session_get_state": (ctypes.c_int, [ctypes.c_void_p]),
}
GNUTLS = "libgnutls.so.30"


class Library:
    """libcoap 4.3 with GnuTLS, its functions declared; one per process."""

    def __init__(self, path: str = LIBRARY) -> None:
        try:
            self.dll = ctypes.CDLL(path)
        except OSError as error:
            raise CoapError(f"{path}: cannot load it ({error}); install libcoap3") from None
        for name, (restype, argtypes) in _SIGNATURES.items():
            function = getattr(self.dll, name)
            function.restype = restype
            function.argtypes = argtypes
        # "libcoap 4.3.1"
        package = (self.dll.coap_package_version() or b"").decode("ascii", "replace")
        self.version = package.removeprefix("libcoap ").strip()
        if self.version not in SUPPORTED:
            raise CoapError(
                f"{path}: libcoap {self.version or '?'} is not one pisec knows "
                f"({', '.join(SUPPORTED)})"
            )
        tls = self.dll.coap_get_tls_library_version()
        if not tls or tls.contents.type != COAP_TLS_LIBRARY_GNUTLS:
            raise CoapError(f"{path}: not built with GnuTLS")
        self.dll.coap_startup()
        self.dll.coap_set_log_level(COAP_LOG_WARNING)
        self.dll.coap_dtls_set_log_level(COAP_LOG_ERROR)
        # libcoap's own handler prints warnings on standard output, where
        # `pisec probe --json` prints its report: to standard error instead.
        self.log_to(lambda _level, message: print(f"libcoap: {message}", file=sys.stderr))

    def log_to(self, handler: Callable[[int, str], None]) -> None:
        """Send libcoap's log lines (WARNING and worse) to `handler`."""

        def forward(level: int, message: bytes | None) -> None:
            handler(level, (message or b"").decode("utf-8", "replace").rstrip())

        self._log_handler = LogHandler(forward)
        self.dll.coap_set_log_handler(self._log_handler)


def address(host: str, port: int) -> Address:
    """A coap_address_t for a numeric IPv4 or IPv6 address."""
    result = Address()
    try:
        packed = socket.inet_pton(socket.AF_INET, host)
        raw = struct.pack("=H", socket.AF_INET) + struct.pack("!H", port) + packed + bytes(8)
    except OSError:
        try:
            packed = socket.inet_pton(socket.AF_INET6, host)
        except OSError:
            raise CoapError(f"{host!r} is not a numeric IP address") from None
        raw = (
            struct.pack("=H", socket.AF_INET6)
            + struct.pack("!H", port)
            + bytes(4)
            + packed
            + struct.pack("=I", 0)
        )
    result.size = len(raw)
    ctypes.memmove(result.addr, raw, len(raw))
    return result


def _bin(data: bytes) -> tuple[BinConst, ctypes.Array[ctypes.c_char]]:
    """A coap_bin_const_t over a buffer the caller keeps alive."""
    buffer = ctypes.create_string_buffer(data, len(data))
    value = BinConst(len(data), ctypes.cast(buffer, ctypes.POINTER(ctypes.c_uint8)))
    return value, buffer


def uri_path_segments(raw: bytes) -> list[bytes]:
    """The Uri-Path options of a request, from libcoap's escaped path
    (segments joined with '/', each percent-encoded where needed)."""
    if not raw:
        return []
    return [unquote_to_bytes(segment) for segment in raw.split(b"/")]


@dataclass(frozen=True)
class Request:
    method: int
    identity: bytes
    path: list[bytes]
    payload: bytes


@dataclass(frozen=True)
class Response:
    code: str
    payload: bytes = b""


class Server:
    """A CoAP server on DTLS-PSK endpoints only; `handle` answers every
    request to any path, with the authenticated identity in hand."""

    def __init__(
        self,
        library: Library,
        keys: Mapping[bytes, bytes],
        handle: Callable[[Request], Response],
        *,
        hint: bytes = b"pisec",
        max_sessions: int = 64,
        max_handshakes: int = 16,
        session_timeout: int = 300,
    ) -> None:
        if not hint:
            raise CoapError("the identity hint must not be empty (libcoap 4.3.1 fails on it)")
        self._lib = library
        self._handle = handle
        self._keys: dict[bytes, tuple[BinConst, ctypes.Array[ctypes.c_char]]] = {}
        self.set_keys(keys)
        self._context = library.dll.coap_new_context(None)
        if not self._context:
            raise CoapError("coap_new_context failed")
        self._default_key, self._default_buffer = _bin(os.urandom(16))
        self._hint, self._hint_buffer = _bin(hint)
        self._id_callback = IdCallback(self._key_for)
        setup = Spsk()
        setup.version = COAP_DTLS_SPSK_SETUP_VERSION
        setup.validate_id_call_back = self._id_callback
        setup.psk_info.hint = self._hint
        setup.psk_info.key = self._default_key
        self._setup = setup
        if not library.dll.coap_context_set_psk2(self._context, ctypes.byref(setup)):
            raise CoapError("coap_context_set_psk2 failed: no DTLS in this libcoap")
        library.dll.coap_context_set_max_idle_sessions(self._context, max_sessions)
        library.dll.coap_context_set_session_timeout(self._context, session_timeout)
        # Handshakes in progress are capped apart from the idle sessions: a
        # flood of half-made ones cannot push the devices' sessions out.
        library.dll.coap_context_set_max_handshake_sessions(self._context, max_handshakes)
        self._method_handler = MethodHandler(self._on_request)
        resource = library.dll.coap_resource_unknown_init2(self._method_handler, 0)
        for method in (GET, POST, DELETE):
            library.dll.coap_register_handler(resource, method, self._method_handler)
        library.dll.coap_add_resource(self._context, resource)
        # The key each session's handshake used: a request on a session
        # made with a key that has since changed (rotated) or gone
        # (revoked) is refused, not only new handshakes.
        self._session_keys: dict[int, bytes] = {}
        self._event_handler = EventHandler(self._on_event)
        library.dll.coap_register_event_handler(self._context, self._event_handler)
        self.refused: list[bytes] = []  # identities refused, for the caller to log

    def set_keys(self, keys: Mapping[bytes, bytes]) -> None:
        """Replace the identities and keys (a reload)."""
        for identity, key in keys.items():
            if not identity or not 16 <= len(key) <= 64:
                raise CoapError("each identity needs a key of 16 to 64 bytes")
        self._keys = {identity: _bin(key) for identity, key in keys.items()}
        self._raw_keys = dict(keys)

    def listen(self, host: str, port: int) -> None:
        """A DTLS endpoint on this address; the only kind of socket opened."""
        where = address(host, port)
        if not self._lib.dll.coap_new_endpoint(self._context, ctypes.byref(where), COAP_PROTO_DTLS):
            raise CoapError(f"cannot listen for DTLS on [{host}]:{port}")

    def run_once(self, timeout_ms: int) -> None:
        if self._lib.dll.coap_io_process(self._context, timeout_ms) < 0:
            raise CoapError("coap_io_process failed")

    def close(self) -> None:
        if self._context:
            self._lib.dll.coap_free_context(self._context)
            self._context = None

    def _key_for(self, identity: Any, session: int | None, _arg: int | None) -> int | None:
        claimed = ctypes.string_at(identity.contents.s, identity.contents.length)
        entry = self._keys.get(claimed)
        if entry is None:
            self.refused.append(claimed)
            return None
        if session:
            if len(self._session_keys) > 16 * 1024:  # closed events missed: start over
                self._session_keys.clear()
            self._session_keys[session] = self._raw_keys[claimed]
        return ctypes.addressof(entry[0])

    def _on_event(self, session: int | None, event: int) -> int:
        if session and event in (EVENT_DTLS_CLOSED, EVENT_DTLS_ERROR, SESSION_CLOSED):
            self._session_keys.pop(session, None)
        return 0

    def _on_request(
        self,
        _resource: int | None,
        session: int | None,
        request: int | None,
        _query: int | None,
        response: int | None,
    ) -> None:
        dll = self._lib.dll
        identity_pointer = dll.coap_session_get_psk_identity(session)
        if not identity_pointer:
            dll.coap_pdu_set_code(response, code("4.01"))
            return
        identity = ctypes.string_at(identity_pointer.contents.s, identity_pointer.contents.length)
        current = self._raw_keys.get(identity)
        if current is None or session is None or self._session_keys.get(session) != current:
            dll.coap_pdu_set_code(response, code("4.01"))
            return
        path_pointer = dll.coap_get_uri_path(request)
        raw_path = b""
        if path_pointer:
            raw_path = ctypes.string_at(path_pointer.contents.s, path_pointer.contents.length)
            dll.coap_delete_string(path_pointer)
        length = ctypes.c_size_t(0)
        data = ctypes.POINTER(ctypes.c_uint8)()
        payload = b""
        if dll.coap_get_data(request, ctypes.byref(length), ctypes.byref(data)) and length.value:
            payload = ctypes.string_at(data, length.value)
        try:
            answer = self._handle(
                Request(
                    dll.coap_pdu_get_code(request),
                    identity,
                    uri_path_segments(raw_path),
                    payload,
                )
            )
        except Exception:  # a failure of ours is a 5.00, never a crash of the server
            answer = Response("5.00")
        dll.coap_pdu_set_code(response, code(answer.code))
        if answer.payload:
            dll.coap_add_data(response, len(answer.payload), answer.payload)


@dataclass(frozen=True)
class Exchange:
    """What one request over a new DTLS session gave: the handshake's time
    and negotiated suite, the answer's code and payload and its time."""

    handshake_ms: float | None
    protocol: str | None
    suite: str | None
    code: str | None
    payload: bytes
    request_ms: float | None
    failure: str | None


class Client:
    """One DTLS-PSK session to a CoAPs server and one confirmable request
    over it (`pisec probe coaps://`). The key stays in this process."""

    def __init__(self, library: Library) -> None:
        self._lib = library
        try:
            self._gnutls = ctypes.CDLL(GNUTLS)
        except OSError as error:
            raise CoapError(f"{GNUTLS}: cannot load it ({error})") from None
        self._gnutls.gnutls_ciphersuite_get.restype = ctypes.c_char_p
        self._gnutls.gnutls_ciphersuite_get.argtypes = [ctypes.c_void_p]
        self._gnutls.gnutls_protocol_get_version.restype = ctypes.c_int
        self._gnutls.gnutls_protocol_get_version.argtypes = [ctypes.c_void_p]
        self._gnutls.gnutls_protocol_get_name.restype = ctypes.c_char_p
        self._gnutls.gnutls_protocol_get_name.argtypes = [ctypes.c_int]

    def request(
        self,
        host: str,
        port: int,
        identity: bytes,
        key: bytes,
        method: int,
        path: list[bytes],
        payload: bytes,
        timeout: float,
        between: tuple[Callable[[str | None], None], ...] = (),
    ) -> Exchange:
        """The handshake, then the request; with `between`, each hook gets
        the answer's code and the request goes again over the same session
        (the last answer counts)."""
        dll = self._lib.dll
        context = dll.coap_new_context(None)
        if not context:
            raise CoapError("coap_new_context failed")
        events: list[int] = []
        answers: list[tuple[int, bytes]] = []

        def on_event(_session: int | None, event: int) -> int:
            events.append(event)
            return 0

        def on_response(
            _session: int | None, _sent: int | None, received: int | None, _mid: int
        ) -> int:
            length = ctypes.c_size_t(0)
            data = ctypes.POINTER(ctypes.c_uint8)()
            body = b""
            if dll.coap_get_data(received, ctypes.byref(length), ctypes.byref(data)):
                body = ctypes.string_at(data, length.value) if length.value else b""
            answers.append((dll.coap_pdu_get_code(received), body))
            return COAP_RESPONSE_OK

        event_handler = EventHandler(on_event)
        response_handler = ResponseHandler(on_response)
        dll.coap_register_event_handler(context, event_handler)
        dll.coap_register_response_handler(context, response_handler)
        identity_value, identity_buffer = _bin(identity)
        key_value, key_buffer = _bin(key)
        setup = Cpsk()
        setup.version = COAP_DTLS_CPSK_SETUP_VERSION
        setup.psk_info.identity = identity_value
        setup.psk_info.key = key_value
        server = address(host, port)
        session = None
        try:
            started = time.monotonic()
            deadline = started + timeout
            session = dll.coap_new_client_session_psk2(
                context, None, ctypes.byref(server), COAP_PROTO_DTLS, ctypes.byref(setup)
            )
            if not session:
                return Exchange(None, None, None, None, b"", None, "no DTLS session could start")
            # libcoap 4.3.1 raises no event when a client's handshake
            # completes; the session's state says it.
            while (
                not events
                and dll.coap_session_get_state(session) != SESSION_ESTABLISHED
                and time.monotonic() < deadline
            ):
                dll.coap_io_process(context, 10)
            if dll.coap_session_get_state(session) != SESSION_ESTABLISHED:
                reason = "timed out" if not events else f"event 0x{events[0]:04x}"
                return Exchange(
                    None, None, None, None, b"", None, f"the DTLS handshake failed ({reason})"
                )
            handshake_ms = (time.monotonic() - started) * 1000
            protocol, suite = self.negotiated(session)
            answer = self._send(context, session, method, path, payload, deadline, answers)
            for hook in between:
                # The same session again, after the caller changed something
                # (a test rotates the key on the server in between).
                hook(answer[0])
                answers.clear()
                deadline = time.monotonic() + timeout
                answer = self._send(context, session, method, path, payload, deadline, answers)
            answer_code, body, request_ms, failure = answer
            return Exchange(handshake_ms, protocol, suite, answer_code, body, request_ms, failure)
        finally:
            if session:
                dll.coap_session_release(session)
            dll.coap_free_context(context)
            del identity_buffer, key_buffer, event_handler, response_handler

    def _send(
        self,
        context: int,
        session: int,
        method: int,
        path: list[bytes],
        payload: bytes,
        deadline: float,
        answers: list[tuple[int, bytes]],
    ) -> tuple[str | None, bytes, float | None, str | None]:
        """One confirmable request on the session: its answer's code, payload
        and time, or why there is none."""
        dll = self._lib.dll
        pdu = dll.coap_new_pdu(COAP_MESSAGE_CON, method, session)
        token_length = ctypes.c_size_t(0)
        token = ctypes.create_string_buffer(8)
        dll.coap_session_new_token(session, ctypes.byref(token_length), token)
        dll.coap_add_token(pdu, token_length.value, token)
        for segment in path:
            dll.coap_add_option(pdu, COAP_OPTION_URI_PATH, len(segment), segment)
        if payload:
            dll.coap_add_data(pdu, len(payload), payload)
        sent = time.monotonic()
        if dll.coap_send(session, pdu) < 0:
            return None, b"", None, "cannot send"
        while not answers and time.monotonic() < deadline:
            dll.coap_io_process(context, 10)
        if not answers:
            return None, b"", None, "no answer in time"
        answer_code, body = answers[0]
        return dotted(answer_code), body, (time.monotonic() - sent) * 1000, None

    def negotiated(self, session: int) -> tuple[str | None, str | None]:
        library = ctypes.c_int(0)
        tls = self._lib.dll.coap_session_get_tls(session, ctypes.byref(library))
        if not tls or library.value != COAP_TLS_LIBRARY_GNUTLS:
            return None, None
        suite = self._gnutls.gnutls_ciphersuite_get(tls)
        name = self._gnutls.gnutls_protocol_get_name(self._gnutls.gnutls_protocol_get_version(tls))
        return (
            name.decode("ascii", "replace") if name else None,
            suite.decode("ascii", "replace") if suite else None,
        )
