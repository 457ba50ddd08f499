"""Job slots: one thread each, taking jobs from the board and running the pipeline.

Each slot owns a pipeline with its own renderer; the TTS and ASR models are
shared by all slots (each serialises its own calls). A slot never dies with a
job: whatever a job raises ends as that job's failure.
"""

from __future__ import annotations

import logging
import threading

from avatar_runtime import logs
from avatar_runtime.api.errors import ErrorCode, JobError
from avatar_runtime.api.schemas import JobState
from avatar_runtime.metrics import RuntimeMetrics
from avatar_runtime.pipeline.runner import Pipeline
from avatar_runtime.service.board import JobBoard, JobRecord

log = logging.getLogger(__name__)


class Slots:
    def __init__(
        self, *, board: JobBoard, pipelines: list[Pipeline], metrics: RuntimeMetrics
    ) -> None:
        self._board = board
        self._pipelines = pipelines
        self._metrics = metrics
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for index, pipeline in enumerate(self._pipelines):
            thread = threading.Thread(
                target=self._work, args=(pipeline,), name=f"slot-{index}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 10.0) -> None:
        """Close the board (no more work) and wait for the slot threads to end."""
        self._board.close()
        for thread in self._threads:
            thread.join(timeout)
        for pipeline in self._pipelines:
            pipeline.close()

    def _work(self, pipeline: Pipeline) -> None:
        while (record := self._board.take()) is not None:
            with logs.job_context(record.id):
                self._run(pipeline, record)

    def _run(self, pipeline: Pipeline, record: JobRecord) -> None:
        board = self._board

        def progress(stage: str, value: float) -> None:
            board.progress(record, stage, value)

        result = None
        try:
            result = pipeline.run(
                record.spec, job_id=record.id, progress=progress, cancel=record.stop
            )
        except JobError as error:
            state = board.fail(record, error)
        except Exception as exc:  # a bug: fail the job, keep the slot
            log.exception("job crashed")
            state = board.fail(record, JobError(ErrorCode.INTERNAL, f"{type(exc).__name__}: {exc}"))
        else:
            board.succeed(record, result)
            state = JobState.SUCCEEDED
        self._metrics.job_finished(str(state), result)
        # The final word on a job: a stop the pod asked for is reported as what it was.
        failure = record.error.to_dict() if record.error else None
        log.info("job ended: %s", state, extra={"state": str(state), "error": failure})
