"""A small kopf operator for the dev-cluster tests: what the product's operator does,
in miniature (handlers, a finalizer, status through the subresource, a daemon).

Run by the tests as ``kopf run --standalone`` in a real process. Each handler
appends a line to the file named by WIDGET_LOG, so the tests can tell which
handlers ran, and how often.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import kopf

LOG = Path(os.environ["WIDGET_LOG"])


def _note(event: str, name: str) -> None:
    with LOG.open("a") as out:
        out.write(f"{event} {name}\n")


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.persistence.finalizer = "example.com/widget-operator"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="example.com")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix="example.com")
    settings.watching.server_timeout = 10
    settings.posting.level = 30  # keep Events out of the way


@kopf.on.create("example.com", "v1", "widgets")
def created(name: str, patch: kopf.Patch, **_: Any) -> None:
    _note("create", name)
    patch.status["phase"] = "Ready"


@kopf.on.update("example.com", "v1", "widgets", field="spec.size")
def resized(name: str, new: Any, patch: kopf.Patch, **_: Any) -> None:
    _note(f"update:{new}", name)
    patch.status["size"] = new


@kopf.on.delete("example.com", "v1", "widgets")
def deleted(name: str, **_: Any) -> None:
    _note("delete", name)


@kopf.daemon("example.com", "v1", "widgets", cancellation_timeout=1)
async def heartbeat(name: str, stopped: kopf.DaemonStopped, **_: Any) -> None:
    _note("daemon-start", name)
    while not stopped:
        await asyncio.sleep(0.5)
    _note("daemon-stop", name)
