"""A local HTTP file server for the download tests (never the internet).

Range requests, a hang-up after N body bytes and a per-block delay are switchable per test, so
resume, truncation and cancel can all be exercised against the real download code.
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BLOCK = 1 << 16


class FileServer:
    """Serves `files` (URL path -> bytes) on 127.0.0.1; `url` is its base address."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files
        self.honour_range = True
        self.cut_after: int | None = None  # close the connection after this many body bytes
        self.delay = 0.0  # seconds per 64 KiB block: makes a download slow enough to cancel
        self.requests: list[tuple[str, str | None]] = []  # (path, Range header)
        self.bytes_sent = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                rng = self.headers.get("Range")
                server.requests.append((self.path, rng))
                data = server.files.get(self.path)
                if data is None:
                    self.send_error(404, "Not Found")
                    return
                start = 0
                if rng and server.honour_range:
                    start = int(rng.removeprefix("bytes=").split("-")[0])
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if server.cut_after is not None:
                    body = body[: server.cut_after]
                    self.close_connection = True
                try:
                    for i in range(0, len(body), BLOCK):
                        # counted before the write: the client may have read the last block and
                        # the test may look at the count before this thread runs again
                        server.bytes_sent += len(body[i : i + BLOCK])
                        self.wfile.write(body[i : i + BLOCK])
                        time.sleep(server.delay)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client cancelled

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
