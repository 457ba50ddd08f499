"""The job API of a real runtime process (3 slots, token auth) over loopback HTTP."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.runtime.pipeline.media import decode_mp4
from tests.runtime.server.harness import (
    LONG_TEXT,
    MEDIUM_TEXT,
    SHORT_TEXT,
    Runtime,
    files_under,
    iter_metrics,
    job_body,
    poll_until,
    start_runtime,
    wait_for,
)

TOKEN = "s3cret-token-for-tests"


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    process = start_runtime(tmp_path_factory.mktemp("runtime"), slots=3, queue_limit=3, token=TOKEN)
    yield process
    process.stop()


@pytest.fixture
def api(runtime: Runtime) -> Iterator[httpx.Client]:
    with runtime.client() as client:
        yield client


def test_six_jobs_on_three_slots(runtime: Runtime, api: httpx.Client, portrait_png: Path) -> None:
    """Never more than 3 run at once; all succeed; every video decodes."""
    busy_seen: list[int] = []
    done = threading.Event()

    def watch() -> None:
        with runtime.client() as watcher:
            while not done.is_set():
                busy_seen.append(watcher.get("/v1/capacity").json()["slots_busy"])
                time.sleep(0.05)

    thread = threading.Thread(target=watch)
    thread.start()
    try:
        ids = [f"six-{i}" for i in range(6)]
        for job_id in ids:
            answer = api.post("/v1/jobs", json=job_body(job_id, portrait_png, runtime.out))
            assert answer.status_code == 202, answer.text
        finals = [wait_for(api, job_id, states={"succeeded", "failed"}) for job_id in ids]
    finally:
        done.set()
        thread.join()

    assert [f["state"] for f in finals] == ["succeeded"] * 6, finals
    assert max(busy_seen) == 3  # all slots were used, and never more
    for final in finals:
        video = final["outputs"]["video"]
        media = decode_mp4(Path(video["url"]))
        assert abs(media.video_seconds - media.audio_seconds) <= 1 / 25
        assert video["duration_seconds"] == pytest.approx(media.video_seconds, abs=1 / 25)
        assert media.frames[0].shape == (256, 256, 3)
        assert final["progress"] == 1.0
        assert final["stages"]["render"] > 0


def test_resubmitting_returns_the_same_job(
    runtime: Runtime, api: httpx.Client, portrait_png: Path
) -> None:
    body = job_body("again", portrait_png, runtime.out, SHORT_TEXT)
    first = api.post("/v1/jobs", json=body)
    assert first.status_code == 202
    assert api.post("/v1/jobs", json=body).status_code == 200  # while it runs
    finished = wait_for(api, "again", states={"succeeded"})
    renders = _jobs_total(api)
    later = api.post("/v1/jobs", json=body)  # after it finished
    assert later.status_code == 200
    assert later.json()["state"] == "succeeded"
    assert later.json()["outputs"]["video"]["sha256"] == finished["outputs"]["video"]["sha256"]
    time.sleep(0.5)
    assert _jobs_total(api) == renders  # no second render


def test_same_id_with_another_body_is_a_conflict(
    runtime: Runtime, api: httpx.Client, portrait_png: Path
) -> None:
    assert (
        api.post("/v1/jobs", json=job_body("clash", portrait_png, runtime.out)).status_code == 202
    )
    other = job_body("clash", portrait_png, runtime.out, "Something else entirely.")
    answer = api.post("/v1/jobs", json=other)
    assert answer.status_code == 409
    assert answer.json()["error"]["code"] == "JobConflict"
    wait_for(api, "clash", states={"succeeded"})


def test_cancel_mid_render_frees_the_slot_and_leaves_nothing(
    runtime: Runtime, api: httpx.Client, portrait_png: Path
) -> None:
    body = job_body("cancel-me", portrait_png, runtime.out, LONG_TEXT)
    assert api.post("/v1/jobs", json=body).status_code == 202
    poll_until(api, "cancel-me", lambda s: s["stage"] == "render" and s["progress"] > 0.3)
    asked = time.monotonic()
    assert api.delete("/v1/jobs/cancel-me").status_code == 200
    final = wait_for(api, "cancel-me", states={"cancelled", "succeeded", "failed"}, timeout=10)
    stopped_after = time.monotonic() - asked
    assert final["state"] == "cancelled"
    assert final["error"]["code"] == "Cancelled"
    assert stopped_after < 2.0  # stops at the next frame, not at the end of the video
    assert api.get("/v1/capacity").json()["slots_busy"] == 0
    assert files_under(runtime.out / "cancel-me") == []


def test_a_long_poll_answers_as_soon_as_the_job_succeeds(
    runtime: Runtime, api: httpx.Client, portrait_png: Path
) -> None:
    """The operator refills a freed slot within milliseconds while polling every few seconds."""
    body = job_body("long-poll", portrait_png, runtime.out, MEDIUM_TEXT)
    assert api.post("/v1/jobs", json=body).status_code == 202
    poll_until(api, "long-poll", lambda s: s["state"] == "running", timeout=30)
    asked = time.monotonic()
    answer = api.get("/v1/jobs/long-poll", params={"wait": 10})
    answered = dt.datetime.now(dt.UTC)
    waited = time.monotonic() - asked
    assert answer.status_code == 200, answer.text
    status = answer.json()
    assert status["state"] == "succeeded"
    assert waited < 8.0  # the job's end, not the 10 s
    late = answered - dt.datetime.fromisoformat(status["finished_at"])
    assert late < dt.timedelta(seconds=0.5), late  # woken by the finish, not by a poll


def test_a_long_poll_past_30_seconds_is_a_bad_request(api: httpx.Client) -> None:
    answer = api.get("/v1/jobs/nope", params={"wait": 31})
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert (error["code"], error["field"]) == ("InvalidRequest", "query.wait")


def test_auth_is_required_on_job_routes_only(runtime: Runtime, portrait_png: Path) -> None:
    with runtime.client(auth=False) as anonymous, runtime.client(token="wrong") as wrong:
        for client in (anonymous, wrong):
            answer = client.post("/v1/jobs", json=job_body("x", portrait_png, runtime.out))
            assert answer.status_code == 401
            assert answer.headers["WWW-Authenticate"] == "Bearer"
            assert client.get("/v1/jobs/x").status_code == 401
            assert client.get("/v1/capacity").status_code == 401
        for path in ("/healthz", "/readyz", "/metrics"):
            assert anonymous.get(path).status_code == 200, path


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"id": "no spaces allowed"}, "id"),
        ({"inputs": {"portrait": "https://example.com/p.png"}}, "inputs"),  # no text, no audio
        (
            {"inputs": {"portrait": "https://example.com/p.png", "text": "a", "audio": "b"}},
            "inputs",
        ),
        ({"options": {"resolution": 511}}, "options.resolution"),
        ({"options": {"fps": 0}}, "options.fps"),
        ({"surprise": True}, "surprise"),
        ({"output": None}, "output"),
    ],
)
def test_bad_bodies_get_400_with_the_field(
    runtime: Runtime, api: httpx.Client, portrait_png: Path, change: dict[str, object], field: str
) -> None:
    body = {**job_body("bad", portrait_png, runtime.out), **change}
    answer = api.post("/v1/jobs", json=body)
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["code"] == "InvalidRequest"
    assert error["field"] == field
    assert api.get("/v1/jobs/bad").status_code == 404  # nothing was admitted


@pytest.mark.parametrize(
    ("portrait", "code"),
    [
        ("https://169.254.169.254/computeMetadata/v1/", "UrlTargetForbidden"),
        ("https://127.0.0.1/p.png", "UrlTargetForbidden"),
        ("https://10.0.0.3/p.png", "UrlTargetForbidden"),
        ("https://localhost/p.png", "UrlTargetForbidden"),
        ("ftp://example.com/p.png", "UrlSchemeNotAllowed"),
    ],
)
def test_forbidden_urls_are_refused_at_admission(
    runtime: Runtime, api: httpx.Client, portrait_png: Path, portrait: str, code: str
) -> None:
    body = job_body("forbidden", portrait_png, runtime.out)
    body["inputs"]["portrait"] = portrait
    answer = api.post("/v1/jobs", json=body)
    assert answer.status_code == 400
    assert answer.json()["error"] == {
        "code": code,
        "message": answer.json()["error"]["message"],
        "retriable": False,
        "field": "inputs.portrait",
    }


def test_outputs_outside_the_allowed_root_are_refused(
    runtime: Runtime, api: httpx.Client, portrait_png: Path
) -> None:
    body = job_body("escape", portrait_png, runtime.out)
    body["output"] = str(runtime.out / ".." / "elsewhere") + "/"
    answer = api.post("/v1/jobs", json=body)
    assert answer.status_code == 400
    assert answer.json()["error"]["field"] == "output"


def test_unknown_job_is_404(api: httpx.Client) -> None:
    for answer in (
        api.get("/v1/jobs/nope"),
        api.get("/v1/jobs/nope", params={"wait": 10}),
        api.delete("/v1/jobs/nope"),
    ):
        assert answer.status_code == 404
        assert answer.json()["error"]["code"] == "JobNotFound"


def test_metrics_expose_the_required_series(
    runtime: Runtime, api: httpx.Client, portrait_png: Path
) -> None:
    # One job of its own: the per-stage histograms have series once a stage has run.
    body = job_body("for-metrics", portrait_png, runtime.out, SHORT_TEXT)
    assert api.post("/v1/jobs", json=body).status_code in (200, 202)
    wait_for(api, "for-metrics", states={"succeeded"})
    names = {name for name, _, _ in iter_metrics(httpx.get(f"{runtime.url}/metrics").text)}
    for required in (
        "avatar_runtime_jobs_total",
        "avatar_runtime_job_duration_seconds_bucket",
        "avatar_runtime_stage_duration_seconds_bucket",
        "avatar_runtime_video_seconds_total",
        "avatar_runtime_realtime_factor_bucket",
        "avatar_runtime_slots",
        "avatar_runtime_queue_depth",
        "avatar_runtime_model_load_seconds",
        "avatar_runtime_ready",
    ):
        assert required in names, required
    assert not any(n.startswith("avatar_runtime_gpu_memory") for n in names)  # no GPU here


def _jobs_total(api: httpx.Client) -> float:
    text = api.get("/metrics").text
    return sum(v for n, _, v in iter_metrics(text) if n == "avatar_runtime_jobs_total")


def test_prometheus_scrapes_throughput(
    runtime: Runtime, api: httpx.Client, portrait_png: Path, tmp_path: Path
) -> None:
    """A real Prometheus scrapes the pod; the throughput query the dashboards use works."""
    from tests.runtime.server.prometheus import prometheus, wait_for_value

    with prometheus(tmp_path, target=runtime.url.removeprefix("http://")) as prom:
        assert wait_for_value(prom, 'up{job="runtime"}') == 1
        body = job_body("scraped", portrait_png, runtime.out, SHORT_TEXT)
        assert api.post("/v1/jobs", json=body).status_code == 202
        wait_for(api, "scraped", states={"succeeded"})
        throughput = wait_for_value(prom, "rate(avatar_runtime_video_seconds_total[1m])")
        assert throughput > 0
        assert wait_for_value(prom, "avatar_runtime_ready") == 1


def test_the_pod_reports_its_engines_and_refuses_jobs_for_others(
    runtime: Runtime, api: httpx.Client, portrait_png: Path
) -> None:
    engines = api.get("/v1/capacity").json()["engines"]
    assert (engines["tts"], engines["renderer"]) == ("piper", "embedded")
    body = job_body("wants-xtts", portrait_png, runtime.out)
    body["options"] = {**body["options"], "tts": "xtts"}
    answer = api.post("/v1/jobs", json=body)
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert (error["code"], error["field"]) == ("EngineUnavailable", "options.tts")
    assert "'piper', not 'xtts'" in error["message"]
    body = job_body("wants-embedded", portrait_png, runtime.out, text=SHORT_TEXT)
    body["options"] = {**body["options"], "tts": "piper", "renderer": "embedded"}
    assert api.post("/v1/jobs", json=body).status_code == 202
