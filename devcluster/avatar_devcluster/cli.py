"""``avatar-devcluster serve``: the local Kubernetes API, until Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from collections.abc import Sequence
from pathlib import Path

from avatar_devcluster import __version__, kubeconfig
from avatar_devcluster.running import serve_forever


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="avatar-devcluster", description=__doc__.split("\n")[0])
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve the API and write a kubeconfig for it")
    serve.add_argument("--host", default="127.0.0.1", help="default: 127.0.0.1 (loopback only)")
    serve.add_argument("--port", type=int, default=6443)
    serve.add_argument("--kubeconfig", type=Path, default=Path("out/devcluster/kubeconfig"))
    serve.add_argument(
        "--state", type=Path, default=Path("out/devcluster/state.json"),
        help="where objects are kept across restarts",
    )  # fmt: skip
    serve.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(message)s")
    args.state.parent.mkdir(parents=True, exist_ok=True)
    url = f"http://{args.host}:{args.port}"
    kubeconfig.write(args.kubeconfig, server=url)
    logging.info("serving %s; KUBECONFIG=%s", url, args.kubeconfig)

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await serve_forever(host=args.host, port=args.port, state=args.state, stop=stop)

    asyncio.run(run())
    return 0
