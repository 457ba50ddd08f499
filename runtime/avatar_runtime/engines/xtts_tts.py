"""XTTS-v2 (through ``coqui-tts``) as the TTS: voice cloning, loaded from the model volume.

One model per pod serves every slot, and the slots' chunks are spoken
together (``xtts_batching``, over the static, graphed decoder of
``xtts_decode``): XTTS's GPT is launch-bound, so 8 chunks at once cost little
more than 1. A job's next chunk is spoken beside the one it waits for
(``chunks_ahead``), so a job alone does not take turns with itself either.

A voice is conditioning latents (a GPT style embedding and a speaker vector)
computed from a sample once and cached by the sample's sha256, so a customer's
voice used for many videos is analysed once. Named voices come from the
volume's ``speakers_xtts.pth`` (XTTS-v2's studio voices).

Text is spoken in sentence chunks (``text_chunks``): XTTS refuses over 400
tokens at once, a job can stop between chunks, and ``stream`` hands each
chunk's audio on as soon as it exists.
"""

from __future__ import annotations

import collections
import importlib.util
import itertools
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from avatar_runtime.api.errors import ErrorCode, JobError
from avatar_runtime.engines import text_chunks, xtts_batching
from avatar_runtime.engines.base import AudioArray, Speech, Voice, VoiceSample
from avatar_runtime.engines.model_volume import XTTS_DIR

log = logging.getLogger(__name__)

# Languages whose text front end needs a package coqui-tts does not install itself.
_LANGUAGE_PACKAGES = {"ja": "cutlet", "zh-cn": "pypinyin"}


def _patch_audio_loading() -> None:
    """coqui-tts loads reference files with ``torchaudio.load``, which needs torchcodec's
    FFmpeg libraries; the runtime decodes samples itself (PyAV) and hands over arrays,
    so only this one path, used for named-voice files, is routed through soundfile."""
    import soundfile
    import torch
    import torchaudio
    from TTS.tts.models import xtts

    def load_audio(path: str, sampling_rate: int) -> Any:
        data, rate = soundfile.read(path, dtype="float32", always_2d=True)
        audio = torch.from_numpy(data.T.copy()).mean(dim=0, keepdim=True)
        if rate != sampling_rate:
            audio = torchaudio.functional.resample(audio, rate, sampling_rate)
        return audio.clamp(-1, 1)

    xtts.load_audio = load_audio


class XttsTTS:
    name = "xtts"
    clones_voices = True

    def __init__(
        self,
        model_dir: Path,
        *,
        device: str = "auto",
        default_voice: str | None = None,
        max_audio_tokens: int | None = None,
        voices_kept: int = 64,
        max_batch: int = 8,
        batch_window: float = 0.01,
        chunks_ahead: int = 1,
        cuda_graphs: bool = True,
        sampling: dict[str, Any] | None = None,
    ) -> None:
        import torch
        from TTS.tts.configs.xtts_config import XttsConfig
        from TTS.tts.models.xtts import Xtts

        _patch_audio_loading()
        directory = model_dir / XTTS_DIR
        config = XttsConfig()
        config.load_json(str(directory / "config.json"))
        model = Xtts(config)
        model.load_checkpoint(config, checkpoint_dir=str(directory), eval=True, use_deepspeed=False)
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        model.to(self.device)
        if max_audio_tokens is not None:
            model.gpt.max_gen_mel_tokens = max_audio_tokens  # random test weights never stop
        self._model = model
        self._torch = torch
        self.sample_rate: int = int(config.model_args.output_sample_rate)
        self.languages = frozenset(
            lang
            for lang in config.languages
            if lang not in _LANGUAGE_PACKAGES
            or importlib.util.find_spec(_LANGUAGE_PACKAGES[lang]) is not None
        )
        manager = getattr(model, "speaker_manager", None)
        self._named: dict[str, Any] = dict(manager.speakers) if manager is not None else {}
        if default_voice is not None and default_voice not in self._named:
            raise ValueError(f"default XTTS voice {default_voice!r} is not in speakers_xtts.pth")
        self.default_voice = default_voice or next(iter(self._named), None)
        self._latents: collections.OrderedDict[str, tuple[Any, Any]] = collections.OrderedDict()
        self._voices_kept = voices_kept
        self._lock = threading.Lock()  # cloning and batches take turns on the model
        self.voices_computed = 0
        """Samples analysed so far (a cached voice does not count): for tests and metrics."""
        self._chunks_ahead = chunks_ahead
        self.batcher = xtts_batching.Batcher(
            model,
            max_batch=max_batch,
            window=batch_window,
            sampling=sampling,
            graphs=cuda_graphs,
            lock=self._lock,
        )

    # -- the TTSEngine interface --------------------------------------------------------------

    def synthesize(
        self,
        text: str,
        *,
        language: str,
        voice: Voice | None = None,
        stop: threading.Event | None = None,
    ) -> Speech:
        pieces = list(self.stream(text, language=language, voice=voice, stop=stop))
        return Speech(samples=np.concatenate(pieces), sample_rate=self.sample_rate)

    def stream(
        self,
        text: str,
        *,
        language: str,
        voice: Voice | None = None,
        stop: threading.Event | None = None,
    ) -> Iterator[AudioArray]:
        """Each sentence chunk's audio as soon as it is spoken; checks run before the first."""
        # The model's language code (zh-cn), and the tokenizer's (zh), as Xtts.inference does.
        lang = self._language(language).split("-")[0]
        pieces = text_chunks.chunks(text, limit=self._model.tokenizer.char_limits.get(lang, 250))
        if not pieces:
            raise JobError(ErrorCode.TEXT_EMPTY, "The text has nothing that can be spoken.")
        latent, speaker = self._conditioning(voice)
        spoken: collections.deque[xtts_batching.Request] = collections.deque()

        def submit(piece: str) -> None:
            tokens = self._model.tokenizer.encode(piece.strip().lower(), lang=lang)
            request = xtts_batching.Request(tokens=tokens, latent=latent, speaker=speaker)
            request.ahead = bool(spoken)
            spoken.append(request)
            self.batcher.submit(request)

        upcoming = iter(pieces)
        try:
            for number in range(len(pieces)):
                if stop is not None and stop.is_set():
                    raise JobError(ErrorCode.CANCELLED, "The job was stopped while speaking.")
                # The next chunk is spoken while this one is: alone, a job's chunks then share
                # the GPU's steps instead of taking turns.
                for piece in itertools.islice(upcoming, 1 + self._chunks_ahead - len(spoken)):
                    submit(piece)
                started = time.perf_counter()
                request = spoken[0]
                request.needed()
                audio = np.clip(request.done.result(), -1.0, 1.0)
                spoken.popleft()
                log.debug(
                    "xtts chunk %d/%d: %d tokens, %.2f s of audio, waited %.2f s",
                    number + 1,
                    len(pieces),
                    len(request.tokens),
                    len(audio) / self.sample_rate,
                    time.perf_counter() - started,
                )
                yield audio
        finally:
            for request in spoken:  # stopped or failed: rows spoken ahead are given up
                request.abandoned.set()

    # -- voices -------------------------------------------------------------------------------

    def _language(self, language: str) -> str:
        lang = language.lower()
        if lang not in self.languages:
            lang = lang.split("-")[0]
        if lang not in self.languages:
            raise JobError(
                ErrorCode.LANGUAGE_UNSUPPORTED,
                f"XTTS-v2 speaks {', '.join(sorted(self.languages))}, not {language!r}.",
                field="language",
            )
        return lang

    def _conditioning(self, voice: Voice | None) -> tuple[Any, Any]:
        if isinstance(voice, VoiceSample):
            return self._cloned(voice)
        name = voice or self.default_voice
        if name is None:
            raise JobError(
                ErrorCode.VOICE_UNKNOWN,
                "XTTS-v2 needs a voice: give a voice sample URL (this pod has no named voices).",
                field="voice",
            )
        if name not in self._named:
            known = ", ".join(sorted(self._named)[:5]) + (", ..." if len(self._named) > 5 else "")
            raise JobError(
                ErrorCode.VOICE_UNKNOWN,
                f"No voice named {name!r} (known: {known or 'none'}).",
                field="voice",
            )
        entry = self._named[name]
        return entry["gpt_cond_latent"], entry["speaker_embedding"]

    def _cloned(self, sample: VoiceSample) -> tuple[Any, Any]:
        with self._lock:
            cached = self._latents.get(sample.digest)
            if cached is not None:
                self._latents.move_to_end(sample.digest)
                return cached
            audio = self._torch.from_numpy(sample.samples).unsqueeze(0).to(self.device)
            try:
                speaker = self._model.get_speaker_embedding(audio, sample.sample_rate)
                latent = self._model.get_gpt_cond_latents(audio, sample.sample_rate)
                if self.device.type == "cuda":  # the TTS reads them on its own stream
                    self._torch.cuda.current_stream().synchronize()
            except RuntimeError as exc:  # XTTS: "reference audio too short"
                raise JobError(
                    ErrorCode.VOICE_TOO_SHORT, f"voice sample: {exc}", field="voice"
                ) from None
            self.voices_computed += 1
            self._latents[sample.digest] = (latent, speaker)
            while len(self._latents) > self._voices_kept:
                self._latents.popitem(last=False)
            return latent, speaker
