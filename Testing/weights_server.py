"""A local HTTP server for download tests (no network here): 127.0.0.1, a thread, files from a dict.

``/<name>`` serves the bytes with their Content-Length; ``/cut/<name>`` announces every byte but closes
the connection halfway through the body (an interrupted download).
"""

from __future__ import annotations

import http.server
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial


class _Handler(http.server.BaseHTTPRequestHandler):
    def __init__(self, *args, files: dict[str, bytes], **kwargs) -> None:
        self.files = files
        super().__init__(*args, **kwargs)

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        cut = self.path.startswith("/cut/")
        body = self.files.get(self.path.removeprefix("/cut"))
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2] if cut else body)
        self.wfile.flush()
        if cut:
            self.close_connection = True

    def log_message(self, *args) -> None:
        pass


@contextmanager
def serve(files: dict[str, bytes]) -> Iterator[str]:
    """Serve ``files`` (path → bytes) on 127.0.0.1; yields the base URL (``http://127.0.0.1:PORT``)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(_Handler, files=files))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (a server that is not there)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
