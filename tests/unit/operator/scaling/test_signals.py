"""The pods' figures from Prometheus' HTTP API or from their own /metrics, as PodSignals.

Prometheus and the pods are httpx ``MockTransport``s here: what is under test is the
operator's reading of their answers and the rates it computes from successive samples.
The system tests (``tests/system/test_pools.py``) run a real Prometheus against real
runtime pods.
"""

from __future__ import annotations

import asyncio
import json
import urllib.parse

import httpx
import pytest

from avatar_operator.scaling.policy import PodSignal
from avatar_operator.scaling.signals import (
    PodFigures,
    PodTarget,
    PrometheusSource,
    ScrapeSource,
    SignalsError,
    parse,
    pod_signal,
)

GIB = 1024**3


def _metrics(*, busy: int, idle: int, video: float, gpu: bool = True) -> str:
    text = (
        "# HELP avatar_runtime_slots Job slots by state.\n# TYPE avatar_runtime_slots gauge\n"
        f'avatar_runtime_slots{{state="busy"}} {busy}\n'
        f'avatar_runtime_slots{{state="idle"}} {idle}\n'
        "# HELP avatar_runtime_video_seconds_total Seconds of video produced.\n"
        "# TYPE avatar_runtime_video_seconds_total counter\n"
        f"avatar_runtime_video_seconds_total {video}\n"
    )
    if gpu:
        text += (
            "# TYPE avatar_runtime_gpu_memory_used_bytes gauge\n"
            f'avatar_runtime_gpu_memory_used_bytes{{gpu="0"}} {9 * GIB}\n'
            "# TYPE avatar_runtime_gpu_memory_total_bytes gauge\n"
            f'avatar_runtime_gpu_memory_total_bytes{{gpu="0"}} {24 * GIB}\n'
        )
    return text


def test_a_pods_metrics_page_gives_the_series_the_policy_reads() -> None:
    series = parse(_metrics(busy=1, idle=2, video=12.5))
    assert series == {
        "slots": 3.0,
        "busy_slots": 1.0,
        "video_seconds": 12.5,
        "gpu_used": 9.0 * GIB,
        "gpu_total": 24.0 * GIB,
    }
    assert "gpu_used" not in parse(_metrics(busy=0, idle=1, video=0, gpu=False))


def test_the_direct_scrape_measures_video_seconds_per_busy_second() -> None:
    source = ScrapeSource(window_seconds=60, timeout=1)
    first = source.figures("p", parse(_metrics(busy=1, idle=0, video=0)), now=0.0)
    assert first.throughput is None  # one sample: nothing measured yet
    # Busy throughout 20 s, 4 s of video finished: 0.2 video s/s.
    busy = source.figures("p", parse(_metrics(busy=1, idle=0, video=4)), now=20.0)
    assert busy.throughput == pytest.approx(0.2)
    # Then idle for 20 s: idle time does not dilute the throughput.
    idle = source.figures("p", parse(_metrics(busy=0, idle=1, video=4)), now=40.0)
    assert idle.throughput == pytest.approx(4 / (20 + 10))  # the busy edge counts half
    assert idle.busy_slots == 0
    assert idle.slots == 1
    assert idle.gpu_memory_total_bytes == 24 * GIB
    # Much later, outside the window, nothing was made: not measured (not zero).
    late = source.figures("p", parse(_metrics(busy=0, idle=1, video=4)), now=200.0)
    assert late.throughput is None


def test_a_restarted_pods_counter_starts_a_new_history() -> None:
    source = ScrapeSource(window_seconds=60, timeout=1)
    source.figures("p", parse(_metrics(busy=1, idle=0, video=50)), now=0.0)
    source.figures("p", parse(_metrics(busy=1, idle=0, video=54)), now=10.0)
    restarted = source.figures("p", parse(_metrics(busy=1, idle=0, video=1)), now=20.0)
    assert restarted.throughput is None


def test_the_scrape_reads_every_pod_concurrently_and_skips_unreachable_ones() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.host == "10.0.0.2":
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(200, text=_metrics(busy=2, idle=0, video=3))

    async def scenario() -> dict[str, PodFigures]:
        source = ScrapeSource(window_seconds=60, timeout=1, transport=httpx.MockTransport(answer))
        try:
            return await source.read(
                "ns",
                [
                    PodTarget("a", "http://10.0.0.1:8080"),
                    PodTarget("b", "http://10.0.0.2:8080"),
                    PodTarget("c", None),  # still starting: no address
                ],
            )
        finally:
            await source.close()

    figures = asyncio.run(scenario())
    assert set(figures) == {"a"}
    assert figures["a"].busy_slots == 2


def _prometheus(answers: dict[str, dict[str, float]], seen: list[str]) -> httpx.MockTransport:
    """Answers each query by the first key found in it: {pod: value}."""

    def answer(request: httpx.Request) -> httpx.Response:
        query = urllib.parse.parse_qs(request.url.query.decode())["query"][0]
        seen.append(query)
        values = next((v for key, v in answers.items() if key in query), {})
        result = [{"metric": {"pod": pod}, "value": [1.0, str(v)]} for pod, v in values.items()]
        body = {"status": "success", "data": {"resultType": "vector", "result": result}}
        return httpx.Response(200, content=json.dumps(body))

    return httpx.MockTransport(answer)


def test_prometheus_answers_become_the_same_figures_per_pod() -> None:
    seen: list[str] = []
    transport = _prometheus(
        {
            "increase": {"a": 0.21},  # the throughput query
            'sum by (pod) (avatar_runtime_slots{namespace="ns",state="busy"})': {"a": 1, "b": 0},
            'sum by (pod) (avatar_runtime_slots{namespace="ns"})': {"a": 2, "b": 2},
            "gpu_memory_used": {"a": 9.0 * GIB},
            "gpu_memory_total": {"a": 24.0 * GIB, "b": float("nan")},
        },
        seen,
    )

    async def scenario() -> dict[str, PodFigures]:
        source = PrometheusSource("http://prom:9090/", window_seconds=120, timeout=1,
                                  transport=transport)  # fmt: skip
        try:
            return await source.read("ns", [PodTarget("a"), PodTarget("b"), PodTarget("new")])
        finally:
            await source.close()

    figures = asyncio.run(scenario())
    assert figures["a"] == PodFigures(
        busy_slots=1,
        slots=2,
        throughput=0.21,
        gpu_memory_used_bytes=9.0 * GIB,
        gpu_memory_total_bytes=24.0 * GIB,
    )
    assert figures["b"].throughput is None
    assert figures["b"].gpu_memory_total_bytes is None  # NaN is no figure
    assert "new" not in figures  # not scraped yet
    throughput = next(q for q in seen if "increase" in q)
    assert "[120s]" in throughput
    assert "[120s:2s]" in throughput  # busy seconds from a subquery of the busy gauge


def test_prometheus_errors_are_signals_errors() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, json={"status": "error", "error": "parse error"})

    async def scenario() -> None:
        source = PrometheusSource("http://prom:9090", window_seconds=60, timeout=1,
                                  transport=httpx.MockTransport(refuse))  # fmt: skip
        try:
            await source.read("ns", [PodTarget("a")])
        finally:
            await source.close()

    with pytest.raises(SignalsError, match="parse error"):
        asyncio.run(scenario())


def test_a_pod_is_busy_if_the_operator_sent_it_a_job_whatever_the_scrape_says() -> None:
    stale = PodFigures(busy_slots=0, slots=2, throughput=0.3)
    assert pod_signal("p", ready=True, jobs=1, idle_since=5.0, figures=stale) == PodSignal(
        name="p", ready=True, busy_slots=1, slots=2, throughput=0.3, idle_since=None
    )
    idle = pod_signal("p", ready=True, jobs=0, idle_since=5.0, figures=stale)
    assert idle.idle_since == 5.0
    assert not idle.busy
    reported = pod_signal("p", ready=True, jobs=0, idle_since=5.0,
                          figures=PodFigures(busy_slots=1))  # fmt: skip
    assert reported.busy
    assert pod_signal("q", ready=False, jobs=0, idle_since=None, figures=None).starting
