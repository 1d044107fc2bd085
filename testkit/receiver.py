"""A product's callback receiver on 127.0.0.1, for tests: records every request it gets and
answers from a script (a status per request, or a hang)."""

from __future__ import annotations

import ssl
import threading
import time
from contextlib import suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """`answers`: what to answer, one entry per request in order (the last one repeats): an
    HTTP status, ("hang", seconds) to hold the request open before answering 200, or
    ("drip", seconds) to send a header a byte at a time for that long."""

    answers: list = field(default_factory=lambda: [200])
    received: list[Received] = field(default_factory=list)
    # With a certificate and key: https, and the server names clients asked for (SNI).
    certfile: str | None = None
    keyfile: str | None = None
    server_names: list[str | None] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _release: threading.Event = field(default_factory=threading.Event)

    @property
    def url(self) -> str:
        assert self.server is not None
        scheme = "https" if self.certfile else "http"
        return f"{scheme}://127.0.0.1:{self.server.server_address[1]}/hooks/decisions"

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.server_address[1])

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with receiver._lock:
                    receiver.received.append(
                        Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                    )
                    index = len(receiver.received) - 1
                    answer = receiver.answers[min(index, len(receiver.answers) - 1)]
                if isinstance(answer, tuple) and answer[0] == "drip":
                    # An answer a byte at a time: no single read waits long.
                    self.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
                    deadline = time.monotonic() + answer[1]
                    with suppress(OSError):
                        while time.monotonic() < deadline and not receiver._release.is_set():
                            self.wfile.write(b"z")
                            self.wfile.flush()
                            time.sleep(0.1)
                    self.close_connection = True
                    return
                if isinstance(answer, tuple) and answer[0] == "hang":
                    receiver._release.wait(answer[1])
                    answer = 200
                text = b'{"ok": true}' if 200 <= answer < 300 else b"receiver says no " * 200
                self.send_response(answer)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(text)))
                self.end_headers()
                # The sender may have given up (timeout) and closed the connection.
                with suppress(OSError):
                    self.wfile.write(text)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        if self.certfile:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(self.certfile, self.keyfile)
            context.sni_callback = lambda sock, name, ctx: self.server_names.append(name)
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self._release.set()  # hanging handlers end now
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
