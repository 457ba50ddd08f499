"""Run the dev cluster: in the foreground (the CLI) or on a background thread (tests)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from avatar_devcluster import app, kubeconfig
from avatar_devcluster.store import Store


@dataclass(frozen=True)
class Running:
    url: str
    kubeconfig: Path
    state: Path | None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def serve_forever(*, host: str, port: int, state: Path | None, stop: asyncio.Event) -> None:
    logs = state.parent / "pods" if state else None
    async with app.serving(Store(state), host=host, port=port, pod_logs=logs):
        await stop.wait()


@contextlib.contextmanager
def in_thread(
    *, kubeconfig_path: Path, state: Path | None = None, port: int = 0
) -> Iterator[Running]:
    """A dev cluster on a free loopback port for as long as the block runs."""
    port = port or free_port()
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    started = threading.Event()
    failure: list[BaseException] = []

    def run() -> None:
        asyncio.set_event_loop(loop)

        async def main() -> None:
            try:
                logs = state.parent / "pods" if state else None
                async with app.serving(Store(state), host="127.0.0.1", port=port, pod_logs=logs):
                    started.set()
                    await stop.wait()
            except BaseException as exc:
                failure.append(exc)
                started.set()

        loop.run_until_complete(main())
        # Watches still streaming when the server stops: let them finish cancelling.
        pending = asyncio.all_tasks(loop)
        for task in pending:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))

    thread = threading.Thread(target=run, name="devcluster", daemon=True)
    thread.start()
    started.wait(30)
    if failure:
        raise failure[0]
    url = f"http://127.0.0.1:{port}"
    try:
        yield Running(
            url=url, kubeconfig=kubeconfig.write(kubeconfig_path, server=url), state=state
        )
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
        loop.close()
