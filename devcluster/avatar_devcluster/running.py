"""Run the dev cluster: in the foreground (the CLI), on a background thread (tests), or
as a child process of ``local_system`` (``python -m avatar_devcluster.running``).

A process of its own has its own CPU time and its own signals: the operator
benchmark counts the dev cluster's CPU apart from the operator's, and the demo
leaves it running after its script has exited. At exit, that process writes how
many requests each client made with each verb on each resource (``--verbs``),
which the operator benchmark reports.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import socket
import sys
import threading
from collections.abc import Iterator, Sequence
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


async def serve_forever(
    *,
    host: str,
    port: int,
    state: Path | None,
    stop: asyncio.Event,
    pod_logs: Path | None = None,
    verbs: Path | None = None,
) -> None:
    """Serve until ``stop`` is set; pods' logs default to ``pods/`` beside the state file."""
    logs = pod_logs or (state.parent / "pods" if state else None)
    async with app.serving(Store(state), host=host, port=port, pod_logs=logs) as runner:
        await stop.wait()
        if verbs is not None:
            counts = runner.app[app.CLUSTER].client_verbs
            rows = [
                {
                    "user": u,
                    "client": c,
                    "verb": v,
                    "group": g,
                    "target": t,
                    "namespace": ns,
                    "requests": n,
                }
                for (u, c, v, g, t, ns), n in sorted(counts.items())
            ]
            verbs.parent.mkdir(parents=True, exist_ok=True)
            verbs.write_text(json.dumps(rows, indent=1))


def process_command(
    *, port: int, state: Path | None, pod_logs: Path, verbs: Path | None = None
) -> list[str]:
    """The dev cluster as a child process on 127.0.0.1:``port``, until SIGTERM or SIGINT.

    Without ``state`` it keeps its objects in memory only.
    """
    argv = [sys.executable, "-m", "avatar_devcluster.running", "--port", str(port)]
    argv += ["--pod-logs", str(pod_logs)]
    argv += ["--state", str(state)] if state else []
    argv += ["--verbs", str(verbs)] if verbs else []
    return argv


def main(argv: Sequence[str] | None = None) -> None:
    """``process_command``'s side: no kubeconfig is written (the parent writes its own)."""
    parser = argparse.ArgumentParser(prog="python -m avatar_devcluster.running")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--state", type=Path, help="default: in memory only")
    parser.add_argument("--pod-logs", type=Path, required=True)
    parser.add_argument("--verbs", type=Path, help="requests per client, verb and resource")
    args = parser.parse_args(argv)
    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(message)s")
    if args.state:
        args.state.parent.mkdir(parents=True, exist_ok=True)

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await serve_forever(
            host="127.0.0.1",
            port=args.port,
            state=args.state,
            stop=stop,
            pod_logs=args.pod_logs,
            verbs=args.verbs,
        )

    asyncio.run(run())


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


if __name__ == "__main__":
    main()
