"""Speech handed from a TTS to a streaming renderer chunk by chunk, and kept whole.

A TTS thread speaks the text a sentence chunk at a time; each chunk goes to the
renderer as soon as it exists (so frames start while the rest is spoken), to
the MP4 writer as soundtrack, and into the whole clip the ASR reads once
speaking is done. The length limit is enforced as the chunks come, so an
over-long text stops the TTS rather than finishing first.
"""

from __future__ import annotations

import contextvars
import queue
import threading
import time
from collections.abc import Callable, Iterator

import numpy as np

from avatar_runtime.api.errors import ErrorCode, JobError
from avatar_runtime.engines.base import AudioArray, Speech


class SpeechFeed:
    def __init__(
        self,
        speak: Callable[[], Iterator[AudioArray]],
        *,
        sample_rate: int,
        max_seconds: float,
        on_done: Callable[[float], None] | None = None,
    ) -> None:
        """``speak`` starts the TTS's stream; ``on_done`` gets the seconds it took."""
        self.sample_rate = sample_rate
        self._max_samples = int(max_seconds * sample_rate)
        self._pieces: list[AudioArray] = []
        self._handed = 0  # pieces already given to the writer
        self._lock = threading.Lock()
        self._queue: queue.Queue[AudioArray | BaseException | None] = queue.Queue()
        self._on_done = on_done
        self.finished = threading.Event()
        self.error: BaseException | None = None
        context = contextvars.copy_context()  # the TTS's log lines carry the job id
        self._thread = threading.Thread(
            target=context.run, args=(self._produce, speak), name="tts-feed", daemon=True
        )
        self._thread.start()

    def _produce(self, speak: Callable[[], Iterator[AudioArray]]) -> None:
        started = time.perf_counter()
        total = 0
        try:
            for piece in speak():
                total += len(piece)
                if total > self._max_samples:
                    limit = self._max_samples / self.sample_rate
                    raise JobError(
                        ErrorCode.TEXT_TOO_LONG,
                        f"The text makes more than {limit:.0f} s of speech, the limit.",
                        field="text",
                    )
                with self._lock:
                    self._pieces.append(piece)
                self._queue.put(piece)
        except BaseException as exc:  # handed on: the renderer's feeder raises it again
            self.error = exc
            self._queue.put(exc)
        else:
            self._queue.put(None)
        finally:
            if self._on_done is not None:
                self._on_done(time.perf_counter() - started)
            self.finished.set()

    def chunks(self) -> Iterator[AudioArray]:
        """The chunks in order as they are spoken (for the renderer's own thread)."""
        while (item := self._queue.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item

    def take_new(self) -> AudioArray:
        """Speech made since the last call (for the MP4 writer)."""
        with self._lock:
            new = self._pieces[self._handed :]
            self._handed = len(self._pieces)
        return np.concatenate(new) if new else np.zeros(0, dtype=np.float32)

    def seconds(self) -> float:
        with self._lock:
            return sum(len(p) for p in self._pieces) / self.sample_rate

    def speech(self) -> Speech:
        """The whole clip, once speaking has finished."""
        self.join()
        with self._lock:
            samples = np.concatenate(self._pieces) if self._pieces else np.zeros(0, np.float32)
        return Speech(samples=samples.astype(np.float32, copy=False), sample_rate=self.sample_rate)

    def join(self) -> None:
        self._thread.join()
