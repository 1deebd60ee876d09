"""Helpers for the real-server tests: free ports, a started server, queries."""

from __future__ import annotations

import socket
import subprocess
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def stop_process(proc: subprocess.Popen[bytes], grace_s: float = 15.0) -> None:
    """Terminate a test server, and kill it if it has not exited within ``grace_s``."""
    proc.terminate()
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@dataclass(frozen=True)
class Server:
    url: str
    log: Path


def influx_query(server: Server, db: str, q: str) -> list[dict[str, object]]:
    """Rows of an InfluxQL query as dicts, one per point (all series concatenated)."""
    response = httpx.get(f"{server.url}/query", params={"db": db, "q": q, "epoch": "ns"})
    response.raise_for_status()
    rows: list[dict[str, object]] = []
    for result in response.json()["results"]:
        assert "error" not in result, result
        for series in result.get("series", []):
            tags = series.get("tags", {})
            rows += [dict(zip(series["columns"], v, strict=True)) | tags for v in series["values"]]
    return rows


def create_database(server: Server, db: str) -> None:
    httpx.post(f"{server.url}/query", params={"q": f'CREATE DATABASE "{db}"'}).raise_for_status()


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class ScriptedServer:
    """A loopback HTTP server answering with the scripted (status, body) pairs in turn
    (the last one repeats), recording every request it saw."""

    def __init__(self, script: list[tuple[int, bytes]]) -> None:
        self.script = list(script)
        self.seen: list[Seen] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                outer.seen.append(
                    Seen(self.command, self.path, dict(self.headers), self.rfile.read(length))
                )
                status, body = outer.script.pop(0) if len(outer.script) > 1 else outer.script[0]
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_POST = do_PUT = _answer

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def __enter__(self) -> ScriptedServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()
