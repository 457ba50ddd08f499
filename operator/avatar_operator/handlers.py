"""The kopf entry point: ``kopf run -m avatar_operator.handlers``.

Only wiring lives here: kopf calls these on resource and pod events and the
dispatcher does the work; pool events go to the scaling loop (``pools.scaler``).
kopf keeps its own bookkeeping in annotations, so the status belongs to the operator
alone. Pools are watched with raw events only: no finalizer, since the API server's
garbage collector removes a deleted pool's Deployments (their owner references).
"""

from __future__ import annotations

import gc
import logging
from typing import Any

import kopf
from prometheus_client import CollectorRegistry, ProcessCollector, start_http_server

from avatar_operator.dispatcher import Dispatcher
from avatar_operator.kube import Kube, load_config
from avatar_operator.log_filters import quiet_event_handlers
from avatar_operator.metrics import OperatorMetrics
from avatar_operator.pools.scaler import Scaler
from avatar_operator.runtime_client import RuntimeClient
from avatar_operator.scaling.signals import PrometheusSource, ScrapeSource, SignalSource
from avatar_operator.settings import (
    FINALIZER,
    GROUP,
    PLURAL,
    POOL_LABEL,
    POOL_PLURAL,
    VERSION,
    OperatorSettings,
    ScalingSettings,
)

log = logging.getLogger(__name__)


@kopf.on.startup()
async def start(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration"
    )
    # kopf turns handler log lines into Events; the dispatcher posts its own, one per step.
    settings.posting.level = logging.WARNING
    quiet_event_handlers("watched", "runtime_pod", "runtime_pool")
    settings.watching.server_timeout = 300
    config = OperatorSettings()
    load_config()
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)  # process_start_time_seconds, memory, CPU
    metrics = OperatorMetrics(registry)
    if config.metrics.port:
        start_http_server(config.metrics.port, registry=registry)
    kube = Kube(workers=config.kube.api_workers, urgent_workers=config.kube.urgent_workers)
    gc.freeze()  # what start-up built lives as long as the process: no collection scans it
    gc.set_threshold(*config.gc.thresholds)
    dispatcher = Dispatcher(
        settings=config,
        kube=kube,
        runtime=RuntimeClient(
            token=config.runtime.read_token(), timeout=config.runtime.request_timeout_seconds
        ),
        metrics=metrics,
    )
    scaler = Scaler(
        dispatcher=dispatcher,
        kube=kube,
        metrics=metrics,
        settings=config,
        source=_signals(config.scaling),
    )
    dispatcher.on_queued = scaler.queued
    dispatcher.start()
    scaler.start()
    memo.dispatcher, memo.scaler = dispatcher, scaler
    log.info(
        "dispatching to runtime pods labelled %s in namespace %s; pool figures from %s",
        POOL_LABEL,
        config.runtime.namespace,
        config.scaling.prometheus_url or "the pods' /metrics",
    )


def _signals(settings: ScalingSettings) -> SignalSource:
    """Prometheus when it is set up, else the pods' own /metrics."""
    if settings.prometheus_url:
        return PrometheusSource(
            settings.prometheus_url,
            window_seconds=settings.throughput_window_seconds,
            timeout=settings.scrape_timeout_seconds,
        )
    return ScrapeSource(
        window_seconds=settings.throughput_window_seconds,
        timeout=settings.scrape_timeout_seconds,
    )


@kopf.on.cleanup()
async def stop(memo: kopf.Memo, **_: Any) -> None:
    scaler: Scaler | None = memo.get("scaler")
    if scaler is not None:
        await scaler.stop()
        await scaler.source.close()
    dispatcher: Dispatcher | None = memo.get("dispatcher")
    if dispatcher is not None:
        await dispatcher.stop()
        await dispatcher.runtime.close()
        await dispatcher.kube.close()


@kopf.on.event(GROUP, VERSION, PLURAL)
async def watched(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
    if event.get("type") != "DELETED":
        memo.dispatcher.noticed(event["object"])


@kopf.on.resume(GROUP, VERSION, PLURAL)
@kopf.on.create(GROUP, VERSION, PLURAL)
async def admit(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    memo.dispatcher.admit(body)


@kopf.on.delete(GROUP, VERSION, PLURAL)
async def delete(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    await memo.dispatcher.forget(body)


@kopf.on.event("", "v1", "pods", labels={POOL_LABEL: kopf.PRESENT})
async def runtime_pod(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
    dispatcher: Dispatcher | None = memo.get("dispatcher")
    if dispatcher is not None:
        dispatcher.pod_event(event.get("type"), event["object"])


@kopf.on.event(GROUP, VERSION, POOL_PLURAL)
async def runtime_pool(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
    scaler: Scaler | None = memo.get("scaler")
    if scaler is not None:
        scaler.observe(event.get("type"), event["object"])
