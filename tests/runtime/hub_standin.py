"""A stand-in for the Hugging Face Hub's HTTP endpoint and GitHub's archive server.

No model hub is reachable here, so ``fetch-models`` is tested against this: a
threaded ``http.server`` answering the requests ``huggingface_hub`` makes, with
tiny files of the right formats instead of real weights:

- ``GET /api/models/{repo}/revision/{rev}?blobs=true``: the commit and each file's
  size and git blob id, and for LFS files their SHA-256 (``lfs.sha256``);
- ``HEAD`` and ``GET /{repo}/resolve/{rev}/{path}``: ``X-Repo-Commit``, ``ETag``
  (blob id, or SHA-256 for LFS files with ``X-Linked-Etag`` and ``X-Linked-Size``),
  ``Content-Length``, and ``Range`` requests answered with 206;
- ``GET /{owner}/{repo}/tar.gz/{commit}``: a code archive, as codeload.github.com.

Gated repositories answer 401 with ``X-Error-Code: GatedRepo`` to a request
without the right token, as the hub does. Faults are set per file: ``corrupt``
(other bytes of the same size), ``drop_once`` (the first GET is cut off after
most of the body) and ``fail`` (GET answers 500). Every request is recorded.
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

_API = re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+)/revision/(?P<rev>[^/]+)$")
_RESOLVE = re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<path>.+)$")
_ARCHIVE = re.compile(r"^/(?P<repo>[^/]+/[^/]+)/tar\.gz/(?P<commit>[0-9a-f]+)$")


def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class Repo:
    files: dict[str, bytes]
    lfs: set[str]
    commit: str
    token: str | None = None  # gated: resolving a file needs this bearer token


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    range: str | None


@dataclass
class HubStandIn:
    repos: dict[str, Repo] = field(default_factory=dict)
    archives: dict[tuple[str, str], bytes] = field(default_factory=dict)  # (repo, commit)
    corrupt: set[tuple[str, str]] = field(default_factory=set)  # (repo, path)
    drop_once: set[tuple[str, str]] = field(default_factory=set)
    fail: set[tuple[str, str]] = field(default_factory=set)
    requests: list[Request] = field(default_factory=list)
    url: str = ""

    def downloads(self) -> list[Request]:
        """The requests that transfer a file's bytes: what a re-run must not make."""
        return [r for r in self.requests if r.method == "GET" and "/api/" not in r.path]

    def start(self) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        serve = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        serve.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _handler(hub: HubStandIn) -> type[BaseHTTPRequestHandler]:
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            # Headers and body go out in separate writes: without this, Nagle's algorithm and
            # the client's delayed ACK hold each response for 40 ms.
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _send(
            self, status: int, body: bytes = b"", headers: dict[str, str] | None = None
        ) -> None:
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def do_HEAD(self) -> None:
            self._serve()

        def do_GET(self) -> None:
            self._serve()

        def _serve(self) -> None:
            path = unquote(urlsplit(self.path).path)
            with lock:
                hub.requests.append(Request(self.command, path, self.headers.get("Range")))
            if match := _API.match(path):
                return self._listing(match["repo"])
            if match := _RESOLVE.match(path):
                return self._file(match["repo"], match["rev"], match["path"])
            if (match := _ARCHIVE.match(path)) and (
                archive := hub.archives.get((match["repo"], match["commit"]))
            ) is not None:
                return self._send(200, archive, {"Content-Type": "application/x-gzip"})
            return self._send(404, b"not found")

        def _listing(self, name: str) -> None:
            repo = hub.repos.get(name)
            if repo is None:
                return self._send(401, b"{}", {"X-Error-Code": "RepoNotFound"})
            siblings = []
            for path, data in sorted(repo.files.items()):
                sibling: dict[str, Any] = {
                    "rfilename": path,
                    "size": len(data),
                    "blobId": git_blob_id(data),
                }
                if path in repo.lfs:
                    sha256 = hashlib.sha256(data).hexdigest()
                    sibling["lfs"] = {"size": len(data), "sha256": sha256, "pointerSize": 134}
                siblings.append(sibling)
            body = {
                "id": name,
                "modelId": name,
                "sha": repo.commit,
                "private": False,
                "gated": "manual" if repo.token else False,
                "siblings": siblings,
            }
            return self._send(200, json.dumps(body).encode(), {"Content-Type": "application/json"})

        def _file(self, name: str, rev: str, path: str) -> None:
            repo = hub.repos.get(name)
            if repo is None or rev not in (repo.commit, "main"):
                return self._send(404, b"", {"X-Error-Code": "RepoNotFound"})
            if repo.token and self.headers.get("Authorization") != f"Bearer {repo.token}":
                message = f"Access to model {name} is restricted. You must have access to it."
                return self._send(
                    401, b"", {"X-Error-Code": "GatedRepo", "X-Error-Message": message}
                )
            data = repo.files.get(path)
            if data is None:
                return self._send(
                    404, b"", {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": repo.commit}
                )
            key = (name, path)
            digest = hashlib.sha256(data).hexdigest() if path in repo.lfs else git_blob_id(data)
            headers = {"X-Repo-Commit": repo.commit, "ETag": f'"{digest}"'}
            if path in repo.lfs:
                headers |= {"X-Linked-Etag": f'"{digest}"', "X-Linked-Size": str(len(data))}
            if self.command == "HEAD":
                return self._send(200, data, headers)
            if key in hub.fail:
                return self._send(500, b"internal error")
            if key in hub.corrupt:
                data = bytes(b ^ 0x5A for b in data)
            start = 0
            if (wanted := self.headers.get("Range")) and (
                m := re.fullmatch(r"bytes=(\d+)-", wanted)
            ):
                start = int(m[1])
                headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
            body = data[start:]
            with lock:
                drop = key in hub.drop_once
                hub.drop_once.discard(key)
            self.send_response(206 if start else 200)
            for header, value in headers.items():
                self.send_header(header, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if drop:  # most of the body, then the connection is gone
                self.wfile.write(body[: len(body) * 9 // 10])
                self.wfile.flush()
                self.close_connection = True
                return None
            self.wfile.write(body)
            return None

    return Handler
