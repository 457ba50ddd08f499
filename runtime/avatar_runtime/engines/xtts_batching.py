"""Chunks from every slot spoken together: one XTTS-v2 GPT generation for many.

XTTS's autoregressive GPT is launch-bound on a GPU: a step over 8 sequences
costs about what a step over 1 costs (measured on an H100: 0.31 s of GPU per
second of audio alone, 0.088 at 4, 0.038 at 8; ``docs/benchmarks.md``). So the
slots of a pod do not take turns on the model: whatever chunks are waiting
are generated as one batch.

coqui-tts generates one text at a time. A batch needs texts of different
lengths side by side, so each prefix (voice latents, start token, text, stop
token) is right-padded to the longest and the padding is masked out of
attention. XTTS's GPT has no position embedding inside the transformer (the
text's and the audio's are added to the inputs, counted from each one's own
start), so a masked pad changes nothing: an item in a batch is computed as it
would be alone. The GPT's latents and the HiFi-GAN decoder then run per item,
as coqui-tts's ``Xtts.inference`` runs them.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from avatar_runtime.engines.base import AudioArray

log = logging.getLogger(__name__)

# Xtts.inference's sampling defaults (XTTS-v2's published inference settings).
SAMPLING: dict[str, Any] = {
    "do_sample": True,
    "temperature": 0.75,
    "top_p": 0.85,
    "top_k": 50,
    "repetition_penalty": 10.0,
    "length_penalty": 1.0,
    "num_beams": 1,
}


@dataclass
class Request:
    tokens: list[int]
    latent: Any
    """GPT conditioning latents, shape (1, n, width)."""
    speaker: Any
    """Speaker embedding, shape (1, dim, 1)."""
    done: Future[AudioArray] = field(default_factory=Future)


def generate(model: Any, requests: list[Request], sampling: dict[str, Any]) -> list[AudioArray]:
    """Speak every request's tokens in one GPT generation; audio per request, in order."""
    import torch

    gpt = model.gpt
    device = model.device
    count = len(requests)
    lengths = [len(r.tokens) for r in requests]
    longest = max(lengths)
    # Each text as [start, tokens..., stop], right-padded (with stop tokens, masked). A
    # tokenizer without [START]/[STOP] leaves them None, which coqui-tts pads as 0.
    start, stop = gpt.start_text_token or 0, gpt.stop_text_token or 0
    text = torch.full((count, longest + 2), stop, dtype=torch.long, device=device)
    text[:, 0] = start
    for row, request in enumerate(requests):
        text[row, 1 : 1 + lengths[row]] = torch.tensor(request.tokens, device=device)
    latents = torch.cat([r.latent.to(device) for r in requests])
    conditioning = latents.shape[1]
    with torch.inference_mode():
        prefix = torch.cat([latents, gpt.text_embedding(text) + gpt.text_pos_embedding(text)], 1)
        gpt.gpt_inference.store_prefix_emb(prefix)
        inputs = torch.ones((count, prefix.shape[1] + 1), dtype=torch.long, device=device)
        inputs[:, -1] = gpt.start_audio_token
        mask = torch.ones_like(inputs)
        for row, length in enumerate(lengths):
            mask[row, conditioning + length + 2 : prefix.shape[1]] = 0
        generated = gpt.gpt_inference.generate(
            inputs,
            bos_token_id=gpt.start_audio_token,
            pad_token_id=gpt.stop_audio_token,
            eos_token_id=gpt.stop_audio_token,
            max_length=gpt.max_gen_mel_tokens + inputs.shape[-1],
            attention_mask=mask,
            **sampling,
        )[:, inputs.shape[-1] :]
        out = []
        for row, request in enumerate(requests):
            codes = generated[row : row + 1]
            stops = (codes[0] == gpt.stop_audio_token).nonzero()
            if len(stops):
                codes = codes[:, : int(stops[0]) + 1]  # as generated alone: up to its own stop
            tokens = text[row : row + 1, 1 : 1 + lengths[row]].int()
            gpt_latents = gpt(
                tokens,
                torch.tensor([lengths[row]], device=device),
                codes,
                torch.tensor([codes.shape[-1] * gpt.code_stride_len], device=device),
                cond_latents=latents[row : row + 1],
                return_attentions=False,
                return_latent=True,
            )
            wav = model.hifigan_decoder(gpt_latents, g=request.speaker.to(device))
            out.append(np.asarray(wav.float().cpu().reshape(-1).numpy(), dtype=np.float32))
        # Drop the prefix: it holds this batch's latents until the next batch otherwise.
        gpt.gpt_inference.store_prefix_emb(None)
    return out


class Batcher:
    """One thread in front of the model: takes every request waiting, speaks them together.

    A request that arrives while a batch runs joins the next one; after an idle
    spell the first request waits ``window`` seconds for others (slots often
    start chunks together), which is nothing beside a generation's seconds.
    """

    def __init__(
        self,
        run: Callable[[list[Request]], list[AudioArray]],
        *,
        max_batch: int,
        window: float,
    ) -> None:
        self._run = run
        self._max_batch = max_batch
        self._window = window
        self._queue: queue.Queue[Request] = queue.Queue()
        self.batches: list[int] = []
        """Sizes of the most recent batches (for tests and logs), newest last."""
        self.on_batch: Callable[[int], None] | None = None
        """Called with each batch's size (the pod counts them in its metrics)."""
        self._thread = threading.Thread(target=self._loop, name="xtts-batcher", daemon=True)
        self._thread.start()

    def speak(self, request: Request) -> AudioArray:
        self._queue.put(request)
        return request.done.result()

    def _take(self) -> list[Request]:
        batch = [self._queue.get()]
        deadline = time.monotonic() + self._window
        while len(batch) < self._max_batch:
            try:
                batch.append(self._queue.get(timeout=max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                break
        return batch

    def _loop(self) -> None:
        while True:
            batch = self._take()
            self.batches = [*self.batches[-99:], len(batch)]
            if self.on_batch is not None:
                self.on_batch(len(batch))
            try:
                results = self._run(batch)
            except BaseException as exc:  # every waiter hears of it; the thread carries on
                log.exception("an XTTS batch of %d failed", len(batch))
                for request in batch:
                    request.done.set_exception(exc)
                continue
            for request, audio in zip(batch, results, strict=True):
                request.done.set_result(audio)
