"""A real HTTP fake of the labeling API (label-api.md) for tests and benchmarks.

It validates requests as the contract says, labels deterministically from the text, logs
every call, and injects faults on demand: latency, 500s, 429s (with or without Retry-After),
hangs past the client's timeout, dropped connections, 401s and malformed 200s.

Run alone: python -m testkit.fake_api --port 8765 --key test-key
Control at runtime: POST /_control with a JSON object of Behaviour fields; GET /_calls.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
import socket
import threading
import time
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODELS = {"cope-latest", "cope-a-9b", "cope-b-12b", "cope-b-a4b", "cope-b-a4b-mm"}
FLAG_WORDS = ("hate", "kill", "violat", "flagme")
_CONF = re.compile(r"conf=(0\.\d+|1\.0)")
REJECT_MARKER = "[reject]"  # a text with it is refused with a 422, as content the API cannot take


@dataclass
class Behaviour:
    latency: float = 0.0
    fail_500: float = 0.0  # probability
    fail_429: float = 0.0  # probability
    retry_after: str | None = None  # header value sent with 429s
    hang: float = 0.0  # seconds to sleep before answering (past the client's timeout)
    drop: bool = False  # close the connection without answering
    status401: bool = False
    malformed: str | None = None  # body to send with a 200 instead of a label
    script: list[int] = field(default_factory=list)  # statuses to answer first, in order
    rate_limit: float = 0.0  # calls per second over a 1 s window; beyond it, 429 (0 = none)
    seed: int = 1


def decide(text: str, criteria: str = "") -> tuple[str, float]:
    """Deterministic label: "1" when the text has a flag word (flipped when the criteria say
    "[invert]"); confidence from `conf=0.xx` in the text, else from its hash (0.5..0.999)."""
    lowered = text.lower()
    label = "1" if any(word in lowered for word in FLAG_WORDS) else "0"
    if "[invert]" in criteria:
        label = "0" if label == "1" else "1"
    if match := _CONF.search(text):
        return label, float(match.group(1))
    digest = int(hashlib.sha256(text.encode()).hexdigest(), 16)
    return label, 0.5 + (digest % 500) / 1000


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024

    def handle_error(self, request, client_address):
        # Clients that time out hang up on us; that is the point of some tests, not an error.
        pass


class FakeLabelAPI:
    def __init__(self, *, key: str = "test-key", host: str = "127.0.0.1", port: int = 0):
        self.key = key
        self.behaviour = Behaviour()
        self.calls: list[dict] = []
        self.in_flight = self.peak_in_flight = 0
        self.lock = threading.Lock()
        self._rng = random.Random(1)
        self.server = _Server((host, port), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeLabelAPI:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)

    def configure(self, **changes) -> None:
        with self.lock:
            self.behaviour = Behaviour(**{**asdict(self.behaviour), **changes})
            self._rng = random.Random(self.behaviour.seed)

    def reset(self) -> None:
        with self.lock:
            self.behaviour = Behaviour()
            self.calls.clear()
            self.peak_in_flight = 0

    def _outcome(self) -> str:
        with self.lock:
            b = self.behaviour
            if b.script:
                return str(b.script.pop(0))
            if b.rate_limit:
                now = time.monotonic()
                self._window = [t for t in getattr(self, "_window", []) if now - t < 1.0]
                if len(self._window) >= b.rate_limit:
                    return "429"
                self._window.append(now)
            roll = self._rng.random()
        if roll < b.fail_500:
            return "500"
        if roll < b.fail_500 + b.fail_429:
            return "429"
        return "ok"

    def _handler(self):
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def setup(self):
                super().setup()
                # Headers and body go out in two writes; without this, Nagle's algorithm and
                # the client's delayed ACK add ~40 ms to every answer.
                self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def _send(self, status: int, payload, headers: dict | None = None) -> None:
                body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                if self.path == "/_calls":
                    with api.lock:
                        self._send(200, list(api.calls))
                else:
                    self._send(404, {"detail": "not found"})

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                if self.path == "/_control":
                    api.configure(**json.loads(raw or b"{}"))
                    return self._send(200, asdict(api.behaviour))
                if self.path == "/_reset":
                    api.reset()
                    return self._send(200, {})
                if self.path != "/v1/label":
                    return self._send(404, {"detail": "not found"})
                self._label(raw)

            def _label(self, raw: bytes):
                with api.lock:
                    api.in_flight += 1
                    api.peak_in_flight = max(api.peak_in_flight, api.in_flight)
                try:
                    self._answer(raw)
                finally:
                    with api.lock:
                        api.in_flight -= 1

            def _answer(self, raw: bytes):
                b = api.behaviour
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = None
                call = {
                    "at": time.time(),
                    "content_text": (body or {}).get("content_text")
                    if isinstance(body, dict)
                    else None,
                    "has_image": isinstance(body, dict) and "content_image" in body,
                    "has_video": isinstance(body, dict) and "content_video" in body,
                    "model": (body or {}).get("model") if isinstance(body, dict) else None,
                    "criteria_text": (body or {}).get("criteria_text")
                    if isinstance(body, dict)
                    else None,
                    "labeler_id": (body or {}).get("labeler_id")
                    if isinstance(body, dict)
                    else None,
                    # Which key the call carried (a test's fake key, never a real one).
                    "api_key": (self.headers.get("Authorization") or "").removeprefix("Bearer "),
                }
                outcome = api._outcome()
                call["outcome"] = outcome
                with api.lock:
                    api.calls.append(call)
                if b.latency:
                    time.sleep(b.latency)
                if b.hang:
                    time.sleep(b.hang)
                if b.drop or outcome == "drop":
                    self.close_connection = True
                    self.connection.close()
                    return
                if (
                    b.status401
                    or outcome == "401"
                    or self.headers.get("Authorization") != f"Bearer {api.key}"
                ):
                    return self._send(401, {"detail": "Invalid API key"})
                if outcome == "403":
                    return self._send(403, {"detail": "not allowed for this plan"})
                if outcome == "500":
                    return self._send(500, {"detail": "internal error"})
                if outcome in ("502", "503", "504", "529"):
                    return self._send(int(outcome), {"detail": "unavailable"})
                if outcome == "429":
                    headers = {"Retry-After": b.retry_after} if b.retry_after else {}
                    return self._send(429, {"detail": "rate limited"}, headers)
                problem = validate(body)
                if not problem and REJECT_MARKER in (body.get("content_text") or ""):
                    problem = "content refused by the test API"
                if problem or outcome == "422":
                    return self._send(422, {"detail": problem or "scripted validation error"})
                if b.malformed is not None:
                    return self._send(200, b.malformed.encode())
                label, confidence = decide(
                    body.get("content_text") or "", body.get("criteria_text") or ""
                )
                self._send(200, {"label": label, "confidence": confidence, "compute_time": 0.01})

        return Handler


def validate(body) -> str | None:
    if not isinstance(body, dict):
        return "body must be a JSON object"
    if not any(body.get(k) for k in ("content_text", "content_image", "content_video")):
        return "one of content_text, content_image, content_video is required"
    if bool(body.get("criteria_text")) == bool(body.get("labeler_id")):
        return "exactly one of criteria_text or labeler_id is required"
    if "labeler_version_id" in body and not body.get("labeler_id"):
        return "labeler_version_id is only allowed with labeler_id"
    if "model" in body and body["model"] not in MODELS:
        return f"unknown model {body['model']}"
    for key in ("content_image", "content_video"):
        if key in body and not str(body[key]).startswith("data:"):
            return f"{key} must be a data URL"
    return None


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--key", default="test-key")
    parser.add_argument("--latency", type=float, default=0.0)
    args = parser.parse_args()
    api = FakeLabelAPI(key=args.key, port=args.port)
    api.configure(latency=args.latency)
    print(f"fake labeling API on {api.url}", flush=True)
    api.server.serve_forever()


if __name__ == "__main__":
    main()
