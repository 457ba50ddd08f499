"""Chunks from every slot spoken together: continuous batching over XTTS-v2's GPT.

XTTS's autoregressive GPT is launch-bound on a GPU: a step over 8 sequences
costs about what a step over 1 costs (measured on an H100: 0.31 s of GPU per
second of audio alone, 0.088 at 4, 0.038 at 8; ``docs/benchmarks.md``). So the
slots of a pod do not take turns on the model. Every waiting chunk takes a
row of the static decoder (``xtts_decode``) before the next step, whether or
not others are already speaking, and leaves it when it says its stop token:
a chunk that arrives during a long one starts within a step, not after it
(batches of whole generations formed waves: with 8 jobs posted at once, 5 of
them waited for the first 3 jobs' whole chunks).

The chunks a job is waiting for go first; chunks spoken ahead (``Request.ahead``)
take the rows that are left. A finished chunk's latents are the states the
decoder kept as it spoke it (coqui-tts's streaming inference takes the same),
so only the HiFi-GAN decoder runs per chunk, on a thread of its own; coqui-tts's
``Xtts.inference`` runs the whole GPT over the chunk again to get them.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from avatar_runtime.engines.base import AudioArray
from avatar_runtime.engines.xtts_decode import Sampling, StaticDecoder

log = logging.getLogger(__name__)

_arrivals = itertools.count()


@dataclass
class Request:
    tokens: list[int]
    latent: Any
    """GPT conditioning latents, shape (1, n, width)."""
    speaker: Any
    """Speaker embedding, shape (1, dim, 1)."""
    done: Future[AudioArray] = field(default_factory=Future)
    ahead: bool = False
    """Spoken ahead of need: takes a row only when no chunk a job is waiting for wants it."""
    abandoned: threading.Event = field(default_factory=threading.Event)
    """Set by a job that stopped: its row is given up at the next step."""
    arrival: int = field(default_factory=lambda: next(_arrivals))

    def needed(self) -> None:
        """The job now waits for this chunk: it goes before chunks spoken ahead."""
        self.ahead = False


@dataclass
class _Row:
    request: Request
    codes: list[int]


def prefix(model: Any, request: Request) -> Any:
    """What coqui-tts puts before the audio: voice latents, then [start] text [stop]."""
    import torch

    gpt = model.gpt
    start, stop = gpt.start_text_token or 0, gpt.stop_text_token or 0
    with torch.inference_mode():  # no autograd record of it, as of the decode it feeds
        text = torch.tensor([[start, *request.tokens, stop]], dtype=torch.long, device=model.device)
        embedded = gpt.text_embedding(text) + gpt.text_pos_embedding(text)
        return torch.cat([request.latent.to(model.device), embedded], dim=1)


def latents_pass(model: Any, request: Request, codes: list[int]) -> Any:
    """(1, len(codes), width): a chunk's latents as ``Xtts.inference`` gets them, by running
    the GPT over the whole chunk once more."""
    import torch

    gpt = model.gpt
    device = model.device
    with torch.inference_mode():
        audio_codes = torch.tensor([codes], dtype=torch.long, device=device)
        return gpt(
            torch.tensor([request.tokens], dtype=torch.int32, device=device),
            torch.tensor([len(request.tokens)], device=device),
            audio_codes,
            torch.tensor([audio_codes.shape[-1] * gpt.code_stride_len], device=device),
            cond_latents=request.latent.to(device),
            return_attentions=False,
            return_latent=True,
        )


def vocode(
    model: Any, request: Request, codes: list[int], latents: Any | None = None
) -> AudioArray:
    """A chunk's audio tokens to samples: the GPT's latents, then HiFi-GAN (Xtts.inference).

    ``latents`` are the ones the decoder kept as it spoke the chunk (``StaticDecoder.latents``,
    what coqui-tts's own streaming inference takes too); without them ``latents_pass`` gets
    them, as ``Xtts.inference`` does.
    """
    import torch

    with torch.inference_mode():
        batch = latents_pass(model, request, codes) if latents is None else latents[None]
        wav = model.hifigan_decoder(batch, g=request.speaker.to(model.device))
    return np.asarray(wav.float().cpu().reshape(-1).numpy(), dtype=np.float32)


def _priority_stream(device: Any) -> Any:
    """A high-priority CUDA stream for the TTS, or None off a GPU.

    A decode step is a few milliseconds of small kernels; on the default stream it queues
    behind whatever the renderer has queued there (a compiled frames batch is tens of
    milliseconds), and every job's speech, hence its first frame, waits. On a stream of
    its own, with priority, the GPU schedules its kernels as soon as blocks free up.
    """
    import torch

    if device.type != "cuda":
        return None
    cuda: Any = torch.cuda  # its stubs type these methods loosely
    _, highest = cuda.Stream.priority_range()  # (lowest, highest): lower numbers go first
    return cuda.Stream(device=device, priority=highest)


def _on(stream: Any) -> AbstractContextManager[Any]:
    import torch

    return torch.cuda.stream(stream) if stream is not None else nullcontext()


class Batcher:
    """One thread in front of the model: admits waiting chunks into free rows, steps all.

    After an idle spell the first chunk waits ``window`` seconds for others (slots
    often start chunks together), which is nothing beside a chunk's seconds.
    """

    def __init__(
        self,
        model: Any,
        *,
        max_batch: int,
        window: float,
        sampling: dict[str, Any] | None = None,
        graphs: bool = True,
        lock: AbstractContextManager[Any] | None = None,
    ) -> None:
        self._model = model
        self.decoder = StaticDecoder(
            model.gpt,
            rows=max_batch,
            sampling=Sampling.of(sampling or {}),
            max_new_tokens=model.gpt.max_gen_mel_tokens,
            graphs=graphs,
        )
        self._max_batch = max_batch
        self._window = window
        self._lock: AbstractContextManager[Any] = lock if lock is not None else nullcontext()
        self._waiting: list[Request] = []
        self._arrived = threading.Condition()
        self._rows: dict[int, _Row] = {}
        self.batches: list[int] = []
        """Chunks speaking together each time chunks join (for tests and logs), newest last."""
        self.on_batch: Callable[[int], None] | None = None
        """Called with that count each time chunks join (the pod counts them in its metrics)."""
        # Vocoding a finished chunk (HiFi-GAN over its kept latents) on its own thread: the
        # other rows go on stepping meanwhile.
        self._vocoder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="xtts-vocoder")
        self._stream = _priority_stream(self.decoder.device)
        self._thread = threading.Thread(target=self._loop, name="xtts-batcher", daemon=True)
        self._thread.start()

    def submit(self, request: Request) -> Future[AudioArray]:
        with self._arrived:
            self._waiting.append(request)
            self._arrived.notify()
        return request.done

    def speak(self, request: Request) -> AudioArray:
        return self.submit(request).result()

    # -- the loop -----------------------------------------------------------------------------

    def _take(self) -> list[Request]:
        """Chunks for the free rows: those a job waits for first, then by arrival."""
        free = self._max_batch - len(self._rows)
        with self._arrived:
            if not self._rows:
                while not self._waiting:
                    self._arrived.wait()
                deadline = time.monotonic() + self._window
                while len(self._waiting) < free and (left := deadline - time.monotonic()) > 0:
                    self._arrived.wait(left)
            self._waiting.sort(key=lambda r: (r.ahead, r.arrival))
            taken, self._waiting = self._waiting[:free], self._waiting[free:]
        return taken

    def _loop(self) -> None:
        with _on(self._stream):
            self._run()

    def _run(self) -> None:
        while True:
            try:
                self._admit(self._take())
                self._finish()
                if self._rows:
                    with self._lock:
                        tokens = self.decoder.step(max(self._rows) + 1)
                    for number, row in self._rows.items():
                        row.codes.append(tokens[number])
                    self._finish()
            except BaseException as exc:  # every waiter hears of it; the thread carries on
                log.exception("an XTTS step over %d chunks failed", len(self._rows))
                for row in self._rows.values():
                    row.request.done.set_exception(exc)
                self._rows.clear()

    def _admit(self, requests: list[Request]) -> None:
        joined = 0
        for request in requests:
            if request.abandoned.is_set():
                request.done.cancel()
                continue
            number = next(n for n in range(self._max_batch) if n not in self._rows)
            try:
                with self._lock:
                    embedded = prefix(self._model, request)
                    if not self.decoder.fits(embedded.shape[1]):
                        raise ValueError(f"a chunk of {len(request.tokens)} tokens is too long")
                    first = self.decoder.prefill(number, embedded)
            except Exception as exc:
                request.done.set_exception(exc)
                continue
            self._rows[number] = _Row(request, [first])
            joined += 1
        if joined:
            self.batches = [*self.batches[-99:], len(self._rows)]
            if self.on_batch is not None:
                self.on_batch(len(self._rows))

    def _finish(self) -> None:
        stop = self._model.gpt.stop_audio_token
        for number, row in list(self._rows.items()):
            request = row.request
            if request.abandoned.is_set():
                del self._rows[number]
                request.done.cancel()
            elif row.codes[-1] == stop or len(row.codes) >= self.decoder.max_new_tokens:
                del self._rows[number]
                latents = self.decoder.latents(number, len(row.codes))  # before reuse
                self._vocoder.submit(self._vocode, request, row.codes, latents)

    def _vocode(self, request: Request, codes: list[int], latents: Any | None) -> None:
        try:
            with _on(self._stream):
                audio = vocode(self._model, request, codes, latents)
        except Exception as exc:
            log.exception("vocoding an XTTS chunk failed")
            request.done.set_exception(exc)
        else:
            request.done.set_result(audio)
