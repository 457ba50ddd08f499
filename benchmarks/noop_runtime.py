"""A runtime pod whose renderer does nothing: the operator benchmark's stand-in.

It is the real runtime HTTP app and job board (bearer token from
``AVATAR_RUNTIME_SERVER__TOKEN``, admission, ``/readyz``, ``/v1/capacity``, long-poll
``GET /v1/jobs/{id}?wait=``), minus the engines: nothing is loaded, and each slot
"renders" a job by sleeping ``--job-seconds`` (0: finishes at once) and reporting a
fixed, plausible result. So a benchmark measures the operator's own cost, not
speech or video.

Each finished job's times go to ``--record``/``<host>.jsonl``, one JSON line a job:
``accepted`` (the board admitted the POST), ``started`` (a slot took it) and
``finished`` (the slot was free again), as Unix times on this machine's clock,
and the slot that ran it.

    python -m benchmarks.noop_runtime --host 127.0.0.2 --port 8080 --slots 4 --record DIR
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import threading
import time
from pathlib import Path

import uvicorn

from avatar_runtime.api.jobs import JobResult, OutputFile, Outputs, StageSeconds
from avatar_runtime.api.schemas import EngineNames
from avatar_runtime.server.app import create_app
from avatar_runtime.service.board import JobRecord
from avatar_runtime.service.pod import RuntimePod
from avatar_runtime.settings import RuntimeSettings


def _result(seconds: float) -> JobResult:
    def file(name: str, content_type: str, duration: float | None) -> OutputFile:
        return OutputFile(
            url=f"gs://noop/{name}",
            size_bytes=1,
            sha256="0" * 64,
            content_type=content_type,
            duration_seconds=duration,
        )

    return JobResult(
        video_seconds=2.0,
        wall_seconds=seconds,
        realtime_factor=seconds / 2.0,
        stages=StageSeconds(render=seconds),
        frames=50,
        resolution=512,
        fps=25,
        wer=None,
        transcript="",
        outputs=Outputs(
            video=file("video.mp4", "video/mp4", 2.0),
            thumbnail=file("thumbnail.jpg", "image/jpeg", None),
            captions=file("captions.vtt", "text/vtt", None),
        ),
    )


def _stamp(value: dt.datetime | None) -> float | None:
    return None if value is None else value.timestamp()


class NoopPod(RuntimePod):
    """The real pod (board, capacity, admission, draining) with slots that do nothing."""

    def __init__(self, settings: RuntimeSettings, *, job_seconds: float, record: Path) -> None:
        super().__init__(settings)
        self.job_seconds = job_seconds
        self.record = record
        self._write = threading.Lock()

    def _load(self) -> None:
        self.engines = EngineNames(tts="none", asr="none", renderer="none", languages=["en"])
        for slot in range(self.slot_count):
            threading.Thread(
                target=self._slot, args=(slot,), name=f"slot-{slot}", daemon=True
            ).start()
        self.ready.set()
        self.metrics.ready.set(1)

    def _slot(self, slot: int) -> None:
        while (job := self.board.take()) is not None:
            if self.job_seconds > 0:
                time.sleep(self.job_seconds)
            self.board.succeed(job, _result(self.job_seconds))
            self._note(job, slot)

    def _note(self, job: JobRecord, slot: int) -> None:
        line = {
            "id": job.id,
            "slot": slot,
            "accepted": job.created_at.timestamp(),
            "started": _stamp(job.started_at),
            "finished": _stamp(job.finished_at),
        }
        with self._write, self.record.open("a") as out:
            out.write(json.dumps(line) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--slots", type=int, default=4)
    parser.add_argument("--job-seconds", type=float, default=0.0, help="each job's sleep")
    parser.add_argument("--record", type=Path, required=True, help="directory for the records")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    settings = RuntimeSettings()  # the token and the rest from AVATAR_RUNTIME_* as a pod's
    settings.slots.count = args.slots
    args.record.mkdir(parents=True, exist_ok=True)
    pod = NoopPod(settings, job_seconds=args.job_seconds, record=args.record / f"{args.host}.jsonl")
    config = uvicorn.Config(create_app(pod), host=args.host, port=args.port, log_config=None)
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
