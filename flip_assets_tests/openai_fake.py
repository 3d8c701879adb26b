"""A local OpenAI-compatible HTTP server for tests: the paid AIGC API, and servers that fail.

It answers /v1/models, /v1/chat/completions and /v1/images/generations like OpenAI does
(JSON shapes of the public API). Images are real: CelebA faces from ../shared/data resized
to 1024x1024 PNG, returned as b64_json, and a vision request is answered with a description
built from the CelebA attributes of the next image. Faults are scripted per request:
an HTTP status such as "429", "500" or "400" (with Retry-After 0), "garbage" (a 200 that is not JSON), "sleep" (slower
than any client timeout in the tests), "trickle" (the whole response, status line first, one byte every
trickle_s, so that no single read waits long; given up after sleep_s), or a callable answer for chat. fault_for(body)
scripts a fault by what is asked (the same one on every retry: "500" for one caption only). Never a default: only
tests start it.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pyarrow.parquet as pq
from PIL import Image

ATTRIBUTE_WORDS = {
    "Smiling": "smiling", "Eyeglasses": "wearing glasses", "Wearing_Earrings": "wearing earrings",
    "Black_Hair": "with black hair", "Blond_Hair": "with blond hair", "Brown_Hair": "with brown hair",
    "Mustache": "with a mustache", "Wearing_Hat": "wearing a hat",
}  # fmt: skip


def celeba_faces(path, count: int, size: int = 1024) -> list[tuple[bytes, str]]:
    """(PNG bytes at size x size, face description from the attributes) for the first faces."""
    table = pq.read_table(path, columns=["image", "Male", "Young", *ATTRIBUTE_WORDS]).slice(0, count).to_pylist()
    faces = []
    for row in table:
        img = Image.open(io.BytesIO(row["image"])).convert("RGB").resize((size, size), Image.Resampling.LANCZOS)
        buffer = io.BytesIO()
        img.save(buffer, format="PNG")
        who = f"{'young ' if row['Young'] == 1 else ''}{'man' if row['Male'] == 1 else 'woman'}"
        traits = [words for attr, words in ATTRIBUTE_WORDS.items() if row[attr] == 1]
        faces.append((buffer.getvalue(), f"A {who} {', '.join(traits) or 'with a calm expression'}."))
    return faces


class FakeOpenAI:
    def __init__(self, faces: list[tuple[bytes, str]] | None = None, chat_answer=None):
        self.faces = faces or []
        # chat_answer(last user text) -> answer text; default: the caption inside the delimiters.
        self.chat_answer = chat_answer or (lambda text: text.replace("<caption>", "").replace("</caption>", "").strip())
        self.faults: deque = deque()  # consumed one per request
        self.always: str | None = None  # a fault for every request
        self.fault_for = None  # fault_for(request body) -> a fault or None, for requests not scripted above
        self.requests: list[tuple[str, dict]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.sleep_s = 5.0
        self.trickle_s = 0.2
        self._lock = threading.Lock()
        self._next_face = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}/v1"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FakeOpenAI:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def count(self, path_suffix: str) -> int:
        return sum(1 for path, _ in self.requests if path.endswith(path_suffix))

    def _take_face(self) -> tuple[bytes, str]:
        with self._lock:
            face = self.faces[self._next_face % len(self.faces)]
            self._next_face += 1
        return face

    def _answer(self, path: str, body: dict) -> tuple[int, dict | bytes]:
        if path.endswith("/models"):
            return 200, {"object": "list", "data": [{"id": "fake-model", "object": "model", "owned_by": "test"}]}
        if path.endswith("/chat/completions"):
            content = body["messages"][-1]["content"]
            if isinstance(content, list):  # vision request: text + image_url parts
                image_url = next((p["image_url"]["url"] for p in content if p.get("type") == "image_url"), "")
                prompt = next(p["text"] for p in content if p.get("type") == "text")
                if not image_url.startswith("data:image/"):
                    return 400, {"error": {"message": "no image", "type": "invalid_request_error"}}
                if "face" in prompt:
                    text = self.faces[self._next_face % len(self.faces)][1]
                else:  # names the image it was sent, so that different images get different prompts
                    digest = hashlib.sha256(image_url.encode()).hexdigest()[:8]
                    text = f"A photo of a person (image {digest})."
            else:
                text = self.chat_answer(content)
            return 200, {
                "id": "chatcmpl-fake", "object": "chat.completion", "created": int(time.time()), "model": body["model"],
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 100, "completion_tokens": len(text.split()), "total_tokens": 100 + len(text.split())},
            }  # fmt: skip
        if path.endswith("/images/generations"):
            png, _ = self._take_face()
            return 200, {"created": int(time.time()), "data": [{"b64_json": base64.b64encode(png).decode("ascii")}]}
        return 404, {"error": {"message": f"unknown path {path}"}}

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet test output
                pass

            def _send(self, status: int, payload, headers: dict | None = None) -> None:
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json" if not isinstance(payload, bytes) else "text/html")
                self.send_header("Content-Length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def _trickle(self, status: int, payload) -> None:
                data = json.dumps(payload).encode()
                head = f"HTTP/1.1 {status} OK\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
                give_up = time.monotonic() + fake.sleep_s
                for byte in head.encode() + data:
                    if time.monotonic() > give_up:
                        break
                    self.wfile.write(bytes([byte]))
                    time.sleep(fake.trickle_s)
                self.close_connection = True

            def _serve(self, body: dict) -> None:
                with fake._lock:
                    fake.requests.append((self.path, body))
                    fake.in_flight += 1
                    fake.max_in_flight = max(fake.max_in_flight, fake.in_flight)
                    fault = fake.faults.popleft() if fake.faults else (fake.fault_for and fake.fault_for(body)) or fake.always
                try:
                    if fault == "sleep":
                        time.sleep(fake.sleep_s)
                    if fault and fault.isdigit():
                        self._send(int(fault), {"error": {"message": "try again", "type": "server_error"}}, {"Retry-After": "0"})
                    elif fault == "garbage":
                        self._send(200, b"<html>502 Bad Gateway</html>")
                    elif fault == "trickle":
                        self._trickle(*fake._answer(self.path, body))
                    else:
                        self._send(*fake._answer(self.path, body))
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout)
                finally:
                    with fake._lock:
                        fake.in_flight -= 1

            def do_GET(self) -> None:
                self._serve({})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self._serve(json.loads(self.rfile.read(length) or b"{}"))

        return Handler
