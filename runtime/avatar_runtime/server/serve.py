"""``avatar-runtime serve``: the runtime pod's process.

uvicorn serves the API; SIGTERM starts the pod's drain instead of stopping the
server, so the operator can still read finished jobs and ``/readyz`` reports the
drain, and the process exits 0 once the drain is over. A second SIGTERM or a
SIGINT (Ctrl-C) stops at once; open long polls are answered as the server stops,
so they never hold its shutdown for their wait.

uvicorn's own limits are set here from ``ServerSettings``: the headers' size
(h11's buffer) and time (``server.connections``, which uvicorn lacks), the
connections open at once, the keep-alive time.
"""

from __future__ import annotations

import logging
import signal
import socket
import threading
from types import FrameType

import uvicorn

from avatar_runtime.server.app import create_app
from avatar_runtime.server.connections import h11_protocol
from avatar_runtime.service.pod import RuntimePod
from avatar_runtime.settings import RuntimeSettings

log = logging.getLogger(__name__)


class _DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, pod: RuntimePod) -> None:
        super().__init__(config)
        self._pod = pod
        self._drain: threading.Thread | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # Not uvicorn's handler: it re-raises the signal after shutdown, and the
        # process would end "killed by SIGTERM" instead of exiting 0.
        if sig == signal.SIGTERM and self._drain is None:
            log.info("SIGTERM: draining")
            self._drain = threading.Thread(target=self._drain_then_exit, name="drain")
            self._drain.start()
            return
        if self.should_exit:
            self.force_exit = True
        self.should_exit = True

    def _drain_then_exit(self) -> None:
        try:
            self._pod.drain()
        finally:
            self.should_exit = True

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        # uvicorn waits for requests in progress; a long poll would hold it up to its wait.
        self._pod.board.close()
        await super().shutdown(sockets)


def serve(settings: RuntimeSettings) -> int:
    pod = RuntimePod(settings)
    server = settings.server
    config = uvicorn.Config(
        create_app(pod),
        host=server.host,
        port=server.port,
        http=h11_protocol(header_timeout_seconds=server.header_timeout_seconds),
        h11_max_incomplete_event_size=server.max_header_bytes,
        limit_concurrency=server.max_connections,
        timeout_keep_alive=5,  # an idle kept-alive connection; the operator reuses its own
        log_config=None,  # our handlers (JSON lines with the job id), not uvicorn's
        timeout_graceful_shutdown=10,
    )
    log.info(
        "serving on %s:%d with %d slots",
        server.host,
        server.port,
        pod.slot_count,
        extra={"auth": pod.token is not None},
    )
    _DrainingServer(config, pod).run()
    return 0
