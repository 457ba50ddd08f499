"""The job board: admission, idempotency, the queue, stops, draining, long polls, retention
and the byte budget of finished jobs.

Everything runs in memory, with a clock moved by hand; threads appear only where a slot
thread's part is under test, and each is joined with a timeout (long polls, on an event
loop, with ``asyncio.wait_for``) so a hang fails instead of stalling.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

from avatar_runtime.api.errors import ErrorCode, JobError
from avatar_runtime.api.jobs import JobResult
from avatar_runtime.api.schemas import JobRequest, JobState, JobStatus
from avatar_runtime.service.board import Admission, JobBoard, JobRecord
from tests.unit.runtime.factories import job_result

T = TypeVar("T")


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _request(job_id: str, text: str = "hi", **extra: Any) -> JobRequest:
    return JobRequest.model_validate(
        {
            "id": job_id,
            "inputs": {"portrait": "https://example.com/p.png", "text": text},
            "output": "gs://b/x/",
            **extra,
        }
    )


def _result(*, wall_seconds: float = 3.0, video_seconds: float = 6.0) -> JobResult:
    return job_result(wall_seconds=wall_seconds, video_seconds=video_seconds)


def _board(
    *,
    slots: int = 1,
    queue_limit: int = 4,
    retention: float = 3600.0,
    budget: int = 32 * 1024 * 1024,
    clock: FakeClock | None = None,
) -> JobBoard:
    return JobBoard(
        slots=slots,
        queue_limit=queue_limit,
        retention_seconds=retention,
        finished_budget_bytes=budget,
        clock=clock or FakeClock(),
    )


def _submit(board: JobBoard, job_id: str, text: str = "hi") -> JobStatus:
    admission, status = board.submit(_request(job_id, text))
    assert admission is Admission.CREATED
    assert status is not None
    return status


def _take(board: JobBoard) -> JobRecord:
    record = board.take()
    assert record is not None
    return record


def _status(board: JobBoard, job_id: str) -> JobStatus:
    status = board.status(job_id)
    assert status is not None
    return status


# -- admission and idempotency ---------------------------------------------------------


def test_submitted_jobs_queue_in_order_with_positions() -> None:
    """The operator shows users how many jobs are ahead of theirs."""
    board = _board()
    first = _submit(board, "a")
    second = _submit(board, "b")
    assert (first.state, first.queue_position) == (JobState.QUEUED, 0)
    assert second.queue_position == 1
    assert board.queued() == 2


def test_resubmitting_the_same_request_returns_the_existing_job() -> None:
    """An operator that retries a POST must never get the video rendered twice."""
    board = _board()
    _submit(board, "a")
    admission, status = board.submit(_request("a"))
    assert admission is Admission.EXISTING
    assert status is not None
    assert status.id == "a"
    assert board.queued() == 1


def test_same_id_with_another_body_is_a_conflict() -> None:
    """Two different videos under one id would overwrite each other's outputs."""
    board = _board()
    _submit(board, "a", text="hello")
    admission, status = board.submit(_request("a", text="goodbye"))
    assert admission is Admission.CONFLICT
    assert status is not None
    assert status.state is JobState.QUEUED
    assert board.queued() == 1


def test_other_options_under_the_same_id_also_conflict() -> None:
    """The fingerprint covers options and output, not only the text."""
    board = _board()
    _submit(board, "a")
    admission, _ = board.submit(_request("a", options={"resolution": 256}))
    assert admission is Admission.CONFLICT


def test_full_once_running_plus_queued_reach_slots_plus_queue_limit() -> None:
    """The pod answers 429 instead of queueing without bound."""
    board = _board(slots=2, queue_limit=1)
    for job_id in ("a", "b", "c"):
        _submit(board, job_id)
    _take(board)  # one running, two queued: 3 = 2 slots + 1 queue place
    admission, status = board.submit(_request("d"))
    assert (admission, status) == (Admission.FULL, None)
    assert board.status("d") is None


def test_a_finished_job_makes_room_again() -> None:
    board = _board(slots=1, queue_limit=0)
    _submit(board, "a")
    assert board.submit(_request("b"))[0] is Admission.FULL
    board.succeed(_take(board), _result())
    assert board.submit(_request("b"))[0] is Admission.CREATED


def test_a_resubmission_is_answered_even_when_full() -> None:
    """A retried POST for an admitted job must not read as 'pod full'."""
    board = _board(slots=1, queue_limit=0)
    _submit(board, "a")
    assert board.submit(_request("a"))[0] is Admission.EXISTING


# -- the slots' side -------------------------------------------------------------------


def test_take_hands_out_jobs_first_in_first_out() -> None:
    board = _board(slots=3)
    for job_id in ("a", "b", "c"):
        _submit(board, job_id)
    taken = [_take(board).id for _ in range(3)]
    assert taken == ["a", "b", "c"]
    assert board.busy() == 3
    assert board.queued() == 0
    status = _status(board, "a")
    assert status.state is JobState.RUNNING
    assert status.queue_position is None
    assert status.started_at is not None


def test_queue_positions_move_up_as_jobs_start() -> None:
    board = _board()
    for job_id in ("a", "b", "c"):
        _submit(board, job_id)
    _take(board)
    assert _status(board, "b").queue_position == 0
    assert _status(board, "c").queue_position == 1


def test_take_blocks_until_a_job_arrives() -> None:
    """An idle slot sleeps on the board and wakes when work is submitted."""
    board = _board()
    taken: list[JobRecord | None] = []
    thread = threading.Thread(target=lambda: taken.append(board.take()), daemon=True)
    thread.start()
    thread.join(0.05)
    assert thread.is_alive(), "take() returned with nothing queued"
    _submit(board, "a")
    thread.join(2.0)
    assert not thread.is_alive()
    assert [r.id for r in taken if r is not None] == ["a"]


def test_close_releases_a_waiting_slot_with_none() -> None:
    """Shutdown must not leave slot threads blocked forever."""
    board = _board()
    taken: list[JobRecord | None] = []
    thread = threading.Thread(target=lambda: taken.append(board.take()), daemon=True)
    thread.start()
    thread.join(0.05)
    board.close()
    thread.join(2.0)
    assert not thread.is_alive()
    assert taken == [None]


def test_progress_never_goes_backwards_and_stops_at_one() -> None:
    """The operator's progress bar only moves forward."""
    board = _board()
    _submit(board, "a")
    record = _take(board)
    board.progress(record, "render", 0.6)
    board.progress(record, "encode", 0.4)
    status = _status(board, "a")
    assert (status.stage, status.progress) == ("encode", 0.6)
    board.progress(record, "upload", 1.7)
    assert _status(board, "a").progress == 1.0


def test_succeed_publishes_the_result() -> None:
    board = _board()
    _submit(board, "a")
    result = _result(wall_seconds=2.0, video_seconds=8.0)
    board.succeed(_take(board), result)
    status = _status(board, "a")
    assert status.state is JobState.SUCCEEDED
    assert status.progress == 1.0
    assert status.video_seconds == 8.0
    assert status.realtime_factor == 0.25
    assert status.outputs == result.outputs
    assert status.error is None
    assert status.finished_at is not None
    assert board.busy() == 0


def test_fail_without_a_stop_keeps_the_job_error() -> None:
    board = _board()
    _submit(board, "a")
    state = board.fail(
        _take(board), JobError(ErrorCode.FACE_NOT_FOUND, "no face", field="inputs.portrait")
    )
    assert state is JobState.FAILED
    error = _status(board, "a").error
    assert error is not None
    assert (error.code, error.field, error.retriable) == ("FaceNotFound", "inputs.portrait", False)
    assert board.busy() == 0


# -- cancelling ------------------------------------------------------------------------


def test_cancel_a_queued_job_finishes_it_at_once() -> None:
    board = _board()
    _submit(board, "a")
    _submit(board, "b")
    status = board.cancel("a")
    assert status is not None
    assert status.state is JobState.CANCELLED
    assert status.error is not None
    assert status.error.code == ErrorCode.CANCELLED
    assert status.queue_position is None
    assert _status(board, "b").queue_position == 0
    assert _take(board).id == "b"


def test_cancel_a_running_job_signals_it_and_fail_records_cancelled() -> None:
    """A running render stops at its next frame; the job ends cancelled, not failed."""
    board = _board()
    _submit(board, "a")
    record = _take(board)
    status = board.cancel("a")
    assert status is not None
    assert status.state is JobState.RUNNING
    assert record.stop.is_set()
    state = board.fail(record, JobError(ErrorCode.INTERNAL, "render stopped"))
    assert state is JobState.CANCELLED
    error = _status(board, "a").error
    assert error is not None
    assert (error.code, error.retriable) == ("Cancelled", False)


def test_cancel_a_finished_job_changes_nothing() -> None:
    board = _board()
    _submit(board, "a")
    board.succeed(_take(board), _result())
    status = board.cancel("a")
    assert status is not None
    assert status.state is JobState.SUCCEEDED
    assert board.cancel("unknown") is None


# -- draining --------------------------------------------------------------------------


def test_interrupt_running_stops_jobs_as_retriable_interruptions() -> None:
    """The operator reschedules an interrupted job on another pod."""
    board = _board(slots=2)
    _submit(board, "a")
    record = _take(board)
    assert board.interrupt_running() == 1
    assert record.stop.is_set()
    state = board.fail(record, JobError(ErrorCode.INTERNAL, "render stopped"))
    assert state is JobState.INTERRUPTED
    error = _status(board, "a").error
    assert error is not None
    assert (error.code, error.retriable) == ("Interrupted", True)


def test_begin_drain_interrupts_waiting_jobs_and_refuses_new_ones() -> None:
    board = _board(slots=1)
    _submit(board, "running")
    running = _take(board)
    _submit(board, "w1")
    _submit(board, "w2")
    assert board.begin_drain() == 2
    assert not board.accepting
    for job_id in ("w1", "w2"):
        status = _status(board, job_id)
        assert status.state is JobState.INTERRUPTED
        assert status.error is not None
        assert status.error.code == ErrorCode.INTERRUPTED
        assert status.error.retriable
    assert board.queued() == 0
    assert _status(board, "running").state is JobState.RUNNING
    assert not running.stop.is_set(), "draining must give running jobs their grace period"
    assert board.submit(_request("new")) == (Admission.DRAINING, None)
    # An interrupted job may run again, but not here: this pod is going away.
    assert board.submit(_request("w1"))[0] is Admission.DRAINING


def test_a_cancelled_running_job_stays_cancelled_when_the_pod_drains() -> None:
    """A job the user cancelled must not come back as 'interrupted' and be rescheduled."""
    board = _board()
    _submit(board, "a")
    record = _take(board)
    board.cancel("a")
    board.interrupt_running()
    assert board.fail(record, JobError(ErrorCode.INTERNAL, "stopped")) is JobState.CANCELLED


def test_wait_idle_times_out_while_a_job_runs() -> None:
    board = _board()
    assert board.wait_idle(0.0)
    _submit(board, "a")
    _take(board)
    assert not board.wait_idle(0.05)


def test_wait_idle_returns_when_the_last_job_finishes() -> None:
    board = _board()
    _submit(board, "a")
    record = _take(board)
    timer = threading.Timer(0.05, board.succeed, args=(record, _result()))
    timer.start()
    try:
        assert board.wait_idle(5.0)
    finally:
        timer.cancel()
    assert board.busy() == 0


# -- long polls ------------------------------------------------------------------------


def _run(scenario: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(asyncio.wait_for(scenario, 10.0))  # a hang fails instead of stalling


def test_wait_finished_returns_when_another_thread_finishes_the_job() -> None:
    """The operator hears of a finished job at once, not at its next poll."""
    board = _board()
    _submit(board, "a")
    record = _take(board)

    async def scenario() -> JobStatus | None:
        waiting = asyncio.ensure_future(board.wait_finished("a", 30.0))
        await asyncio.sleep(0.05)
        assert not waiting.done(), "wait_finished() returned while the job still runs"
        board.progress(record, "render", 0.5)  # a change that is not the end wakes no one up
        await asyncio.sleep(0.05)
        assert not waiting.done()
        threading.Thread(target=board.succeed, args=(record, _result())).start()  # a slot
        return await waiting

    status = _run(scenario())
    assert status is not None
    assert status.state is JobState.SUCCEEDED


def test_wait_finished_answers_with_the_current_status_after_the_timeout() -> None:
    board = _board()
    _submit(board, "a")
    started = time.monotonic()
    status = _run(board.wait_finished("a", 0.1))
    assert 0.1 <= time.monotonic() - started < 2.0
    assert status is not None
    assert (status.state, status.queue_position) == (JobState.QUEUED, 0)


def test_wait_finished_answers_at_once_for_finished_and_unknown_jobs() -> None:
    board = _board()
    _submit(board, "a")
    board.cancel("a")
    started = time.monotonic()
    status = _run(board.wait_finished("a", 30.0))
    assert status is not None
    assert status.state is JobState.CANCELLED
    assert _run(board.wait_finished("unknown", 30.0)) is None
    assert time.monotonic() - started < 1.0


def test_close_releases_a_long_poll() -> None:
    """A pod shutting down must not hold long polls until their wait runs out."""
    board = _board()
    _submit(board, "a")

    async def scenario() -> JobStatus | None:
        waiting = asyncio.ensure_future(board.wait_finished("a", 30.0))
        await asyncio.sleep(0.05)
        board.close()
        return await waiting

    status = _run(scenario())
    assert status is not None
    assert status.state is JobState.QUEUED


def test_hundreds_of_long_polls_hold_no_thread_and_one_end_wakes_them_all() -> None:
    """Long polls wait on the event loop: the thread pool stays free for everything else."""
    board = _board()
    _submit(board, "a")
    record = _take(board)
    threads = threading.active_count()

    async def scenario() -> list[JobStatus | None]:
        waits = [asyncio.ensure_future(board.wait_finished("a", 30.0)) for _ in range(500)]
        await asyncio.sleep(0.05)
        assert threading.active_count() == threads
        assert not any(w.done() for w in waits)
        # The board is not locked while they wait: a slot thread reads and finishes at once.
        slot = threading.Thread(target=board.succeed, args=(record, _result()))
        slot.start()
        slot.join(1.0)
        assert not slot.is_alive()
        return await asyncio.gather(*waits)

    answers = _run(scenario())
    assert {a.state if a else None for a in answers} == {JobState.SUCCEEDED}


def test_a_long_poll_that_is_cancelled_leaves_nothing_behind() -> None:
    """A client that hangs up must not leave a waiter on the job for its whole life."""
    board = _board()
    _submit(board, "a")
    record = _take(board)

    async def scenario() -> None:
        waiting = asyncio.ensure_future(board.wait_finished("a", 30.0))
        await asyncio.sleep(0.01)
        assert len(record.waiters) == 1
        waiting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await waiting
        await board.wait_finished("a", 0.01)  # and one that timed out
        assert record.waiters == []

    _run(scenario())
    board.succeed(record, _result())  # nobody is told: no loop is called after it closed


# -- retention ------------------------------------------------------------------------


def test_finished_jobs_disappear_after_the_retention_time() -> None:
    """Results stay collectable for a while, then memory is freed."""
    clock = FakeClock()
    board = _board(retention=60.0, clock=clock)
    _submit(board, "a")
    board.succeed(_take(board), _result())
    clock.now += 60.0
    assert _status(board, "a").state is JobState.SUCCEEDED
    clock.now += 1.0
    assert board.status("a") is None
    assert board.submit(_request("a", text="a new body"))[0] is Admission.CREATED


def test_retention_forgets_jobs_in_the_order_they_finished() -> None:
    clock = FakeClock()
    board = _board(retention=60.0, clock=clock)
    for job_id in ("first", "second"):
        _submit(board, job_id)
        board.succeed(_take(board), _result())
        clock.now += 30.0
    clock.now += 1.0  # first finished 61 s ago, second 31 s ago
    assert board.status("first") is None
    assert _status(board, "second").state is JobState.SUCCEEDED
    assert board.finished()[0] == 1


def test_unfinished_jobs_never_expire() -> None:
    clock = FakeClock()
    board = _board(retention=1.0, clock=clock)
    _submit(board, "running")
    _take(board)
    _submit(board, "queued")
    clock.now += 10_000.0
    assert _status(board, "running").state is JobState.RUNNING
    assert _status(board, "queued").state is JobState.QUEUED


def _finish_one(board: JobBoard, job_id: str, text: str = "hi") -> int:
    """Run a job to success; the bytes the board charges for it."""
    before = board.finished()[1]
    _submit(board, job_id, text)
    board.succeed(_take(board), _result())
    return board.finished()[1] - before


def test_a_finished_job_keeps_only_what_its_status_needs() -> None:
    """A 5,000-character text is dropped when the job ends: it costs what a short one does."""
    board = _board()
    short = _finish_one(board, "short")
    long = _finish_one(board, "long.", text="x" * 5000)  # ids of one length: statuses alike
    assert long == short < 5000
    status = _status(board, "long.")
    assert status.outputs is not None  # what the operator collects is all there
    assert status.finished_at is not None


def test_over_the_byte_budget_the_oldest_finished_jobs_are_forgotten_first() -> None:
    size = _finish_one(_board(), "job-0")
    clock = FakeClock()
    board = _board(clock=clock, budget=3 * size)
    for i in range(5):
        _finish_one(board, f"job-{i}")
        clock.now += 1.0
    kept, charged = board.finished()
    assert (kept, charged) == (3, 3 * size)
    assert [board.status(f"job-{i}") is not None for i in range(5)] == [False, False] + [True] * 3


def test_the_budget_never_forgets_a_queued_or_running_job() -> None:
    board = _board(budget=1)  # smaller than any finished job
    _submit(board, "running")
    running = _take(board)
    _submit(board, "queued")
    board.succeed(running, _result())
    assert board.status("running") is None  # finished, and over the budget at once
    assert _status(board, "queued").state is JobState.QUEUED
    assert board.finished() == (0, 0)


def test_a_finished_job_resubmitted_with_the_same_body_is_answered_never_run_again() -> None:
    """Idempotency holds for finished jobs: the fingerprint is kept when the inputs go."""
    board = _board()
    text = "A long text. " * 300
    _finish_one(board, "a", text)
    admission, status = board.submit(_request("a", text))
    assert admission is Admission.EXISTING
    assert status is not None
    assert status.state is JobState.SUCCEEDED
    assert board.queued() == 0
    assert board.submit(_request("a", "another text"))[0] is Admission.CONFLICT


def test_a_retry_replaces_the_finished_record_of_its_failed_attempt() -> None:
    board = _board()
    _submit(board, "flaky")
    board.fail(_take(board), JobError(ErrorCode.DOWNLOAD_FAILED, "HTTP 503"))
    assert board.finished()[0] == 1
    assert board.submit(_request("flaky"))[0] is Admission.CREATED
    assert board.finished() == (0, 0)
    assert _status(board, "flaky").state is JobState.QUEUED


# -- retry_after -----------------------------------------------------------------------


def test_retry_after_grows_with_the_queue() -> None:
    """Clients told to come back later wait longer behind a longer queue."""
    board = _board(slots=1, queue_limit=10)
    empty = board.retry_after()
    _submit(board, "a")
    _submit(board, "b")
    assert 1 <= empty < board.retry_after() <= 600


def test_retry_after_learns_from_finished_jobs_within_bounds() -> None:
    fast = _board(slots=1)
    _submit(fast, "a")
    fast.succeed(_take(fast), _result(wall_seconds=0.001))
    assert fast.retry_after() == 1

    slow = _board(slots=1)
    _submit(slow, "a")
    slow.succeed(_take(slow), _result(wall_seconds=100_000.0))
    assert slow.retry_after() == 600


def test_retry_after_shrinks_with_more_slots() -> None:
    one, four = _board(slots=1), _board(slots=4)
    for board in (one, four):
        _submit(board, "a")
        board.succeed(_take(board), _result(wall_seconds=40.0))
    assert four.retry_after() < one.retry_after()


def test_a_job_that_failed_for_a_passing_reason_runs_again_when_resubmitted() -> None:
    """The operator retries with the same id (the resource's uid): a retry must render."""
    board = _board()
    _submit(board, "flaky")
    board.fail(_take(board), JobError(ErrorCode.DOWNLOAD_FAILED, "HTTP 503"))
    assert _status(board, "flaky").state is JobState.FAILED
    admission, status = board.submit(_request("flaky"))
    assert admission is Admission.CREATED
    assert status is not None
    assert status.state is JobState.QUEUED
    assert status.error is None


def test_a_job_that_failed_for_good_or_succeeded_is_never_run_again() -> None:
    board = _board()
    _submit(board, "faceless")
    board.fail(_take(board), JobError(ErrorCode.FACE_NOT_FOUND, "no face"))
    _submit(board, "done")
    board.succeed(_take(board), _result())
    for job_id, state in (("faceless", JobState.FAILED), ("done", JobState.SUCCEEDED)):
        admission, status = board.submit(_request(job_id))
        assert admission is Admission.EXISTING
        assert status is not None
        assert status.state is state
    assert board.queued() == 0
