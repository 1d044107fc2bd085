"""The only code that speaks HTTP to products' callback URLs, and the SSRF guard.

A callback URL is set by an admin, but the name in it resolves wherever its DNS says, at the
moment of sending: a name that resolved to a public address when it was saved can resolve to
169.254.169.254 (cloud metadata) or 127.0.0.1 later. So the name is resolved here, every
address is checked, and the connection goes to the address that was checked (a second lookup
by the HTTP library could answer differently: DNS rebinding), with the name kept for the
Host header, TLS SNI and the certificate check. Redirects are never followed.
"""

from __future__ import annotations

import contextvars
import ipaddress
import socket
import threading
import time
from contextlib import suppress
from dataclasses import dataclass
from urllib.parse import urlsplit

import certifi
import urllib3

# What is kept of a receiver's answer for the delivery log.
BODY_LOG_BYTES = 1024


class _Deadline:
    """Cuts a request off when its whole time is up. Socket timeouts apply to each read, so
    a receiver that sends its answer a byte at a time could hold a worker for hours; this
    shuts the connection's socket down from a timer instead."""

    def __init__(self, seconds: float):
        self.expired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> _Deadline:
        self._token = _deadline.set(self)
        self._timer.start()
        return self

    def __exit__(self, *exc) -> None:
        self._timer.cancel()
        _deadline.reset(self._token)

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            if self.expired:
                sock.shutdown(socket.SHUT_RDWR)
            self._sockets.append(sock)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._sockets:
                with suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


_deadline: contextvars.ContextVar[_Deadline | None] = contextvars.ContextVar(
    "callback_deadline", default=None
)


class _WatchedHTTPConnection(urllib3.connection.HTTPConnection):
    def connect(self) -> None:
        super().connect()
        if (deadline := _deadline.get()) is not None and self.sock is not None:
            deadline.watch(self.sock)


class _WatchedHTTPSConnection(urllib3.connection.HTTPSConnection):
    def connect(self) -> None:
        super().connect()
        if (deadline := _deadline.get()) is not None and self.sock is not None:
            deadline.watch(self.sock)


class CallbackRefused(Exception):
    """The URL may not be called under the current settings (scheme, or where it resolves)."""


@dataclass(frozen=True)
class Answer:
    status_code: int | None
    latency_ms: int
    body: str = ""
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


# IPv6 addresses that carry an IPv4 address a gateway or relay will reach on our behalf:
# judged by that IPv4 address (2002:7f00:1::1 is 6to4 for 127.0.0.1, 64:ff9b::a9fe:a9fe is
# NAT64 for 169.254.169.254). Python calls most of them global.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
# Local-use NAT64 (RFC 8215) translates into a network of the operator's own choosing, with
# an embedding that depends on its prefix length: never public, refused whatever it embeds.
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address leads to (mapped, 6to4, Teredo, NAT64)."""
    if ip.ipv4_mapped is not None:
        return [ip.ipv4_mapped]  # ::ffff:127.0.0.1 is 127.0.0.1
    if ip.sixtofour is not None:
        return [ip.sixtofour]
    if ip.teredo is not None:
        return list(ip.teredo)  # the relay server's address and the client's
    if ip in _NAT64:
        return [ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)]
    return []


def _refusal(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    for kind in ("loopback", "private", "link_local", "multicast", "reserved", "unspecified"):
        if getattr(ip, f"is_{kind}"):
            return f"a {kind.replace('_', '-')} address"
    if not ip.is_global:  # shared (100.64/10), documentation ranges and the like
        return "not a public address"
    return None


def address_refusal(address: str) -> str | None:
    """Why an address may not be called from production, or None if it is public."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address):
        if ip in _NAT64_LOCAL:
            return f"{address} is a local-use NAT64 address"
        for embedded in _embedded_ipv4(ip):
            if reason := _refusal(embedded):
                return f"{address} leads to {embedded}, {reason}"
        if ip.ipv4_mapped is not None:
            return None  # judged by the IPv4 address alone, as a connection to it would be
        if ip.sixtofour is not None or ip in _NAT64:
            # The gateway reaches the public IPv4 address it embeds; Python's view of the
            # prefix itself (reserved in some versions) is not the question.
            return None
    if reason := _refusal(ip):
        return f"{address} is {reason}"
    return None


def check_scheme(url: str, *, allow_http: bool) -> None:
    scheme = urlsplit(url).scheme.lower()
    if scheme == "https" or (scheme == "http" and allow_http):
        return
    allowed = "http or https" if allow_http else "https"
    raise CallbackRefused(f"callback URLs must use {allowed}, not {scheme or 'no scheme'!r}")


def resolve(host: str, port: int, *, allow_private: bool) -> str:
    """The address to connect to. Every address the name has must be allowed: a name with
    one public and one private address is refused, whichever the library would pick."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise CallbackRefused(f"cannot resolve {host}: {exc}") from None
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not addresses:
        raise CallbackRefused(f"{host} has no address")
    if not allow_private:
        for address in addresses:
            if reason := address_refusal(address):
                raise CallbackRefused(f"{host} resolves to {reason}")
    return addresses[0]


def post(
    url: str,
    *,
    body: bytes,
    headers: dict[str, str],
    connect_timeout: float,
    read_timeout: float,
    allow_http: bool,
    allow_private: bool,
) -> Answer:
    """POST once, no redirects, no retries, in at most connect_timeout + read_timeout in
    all. Raises CallbackRefused before any connection when the URL may not be called; a
    network error or timeout is an Answer with `error`."""
    check_scheme(url, allow_http=allow_http)
    parts = urlsplit(url)
    host = parts.hostname
    if not host:
        raise CallbackRefused("callback URL has no host")
    https = parts.scheme.lower() == "https"
    try:
        port = parts.port or (443 if https else 80)
    except ValueError:
        raise CallbackRefused("callback URL has a bad port") from None
    address = resolve(host, port, allow_private=allow_private)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    netloc_host = f"[{host}]" if ":" in host else host
    default_port = 443 if https else 80
    host_header = netloc_host if port == default_port else f"{netloc_host}:{port}"
    timeout = urllib3.Timeout(connect=connect_timeout, read=read_timeout)
    pool: urllib3.HTTPConnectionPool
    if https:
        # Connect to the checked address; the name stays the one TLS and the certificate
        # are checked against.
        pool = urllib3.HTTPSConnectionPool(
            address,
            port,
            timeout=timeout,
            retries=False,
            maxsize=1,
            server_hostname=host,
            assert_hostname=host,
            cert_reqs="CERT_REQUIRED",
            ca_certs=certifi.where(),
        )
        pool.ConnectionCls = _WatchedHTTPSConnection
    else:
        pool = urllib3.HTTPConnectionPool(address, port, timeout=timeout, retries=False, maxsize=1)
        pool.ConnectionCls = _WatchedHTTPConnection
    started = time.monotonic()
    deadline = _Deadline(connect_timeout + read_timeout)
    error = ""
    try:
        with deadline:
            answer = _send(pool, path, body=body, headers={**headers, "Host": host_header})
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        error = _describe(exc)
    finally:
        pool.close()
    latency = int((time.monotonic() - started) * 1000)
    if deadline.expired:
        # Even if a status line came through: an answer cut off is no answer.
        limit = connect_timeout + read_timeout
        return Answer(None, latency, error=f"timed out: no full answer within {limit:g} s")
    if error:
        return Answer(None, latency, error=error)
    return answer


def _send(pool: urllib3.HTTPConnectionPool, path: str, *, body: bytes, headers: dict) -> Answer:
    started = time.monotonic()
    response = pool.urlopen(
        "POST",
        path,
        body=body,
        headers=headers,
        redirect=False,
        retries=False,
        preload_content=False,
        assert_same_host=False,
    )
    try:
        # The read timeout applies to each read: a receiver that answers its headers and
        # then hangs on the body is cut off too.
        raw = response.read(BODY_LOG_BYTES)
    finally:
        response.close()  # the rest of the body is not wanted: drop the connection
    latency = int((time.monotonic() - started) * 1000)
    return Answer(response.status, latency, raw.decode("utf-8", "replace"))


def _describe(exc: Exception) -> str:
    if isinstance(exc, urllib3.exceptions.ReadTimeoutError):
        return "timed out waiting for the receiver's answer"
    if isinstance(exc, urllib3.exceptions.ConnectTimeoutError):
        return "timed out connecting"
    if isinstance(exc, urllib3.exceptions.SSLError):
        return f"TLS error: {exc}"
    return f"{type(exc).__name__}: {exc}"[:1000]
