"""The whole runtime pod on the GPU: a real ``avatar-runtime serve``, jobs over HTTP.

Where ``ditto_pod`` measures the renderer alone through its interface, this
starts the pod itself (``tests/runtime/server/harness.py``, the harness the
server tests and ``server_benchmark`` use) on the GPU with the production
engines, each from a volume with random weights: XTTS-v2 at full size
(``tests/runtime/engines/xtts_volume.py``, its stop token silenced so every
chunk runs to ``--tokens``), faster-whisper with a Whisper of small's size
(``whisper_volume``), Ditto's real network classes (``ditto_volume``), PyAV
encoding, the upload to a local bucket (``gs://`` served from a directory).
Every job is the same two-sentence text (two XTTS chunks, streamed into the
renderer), a 512 x 512 video. Random weights speak noise and the ASR hears
nothing, so the intelligibility limits are opened (``quality.max_wer`` and
``max_cer``: an existing setting, not a new one); all else is the pod's default.

Parts, each a pod started for it (``--parts``):

- ``unbatched``: Ditto as shipped (``DittoRenderer``, online, one per slot) and
  XTTS-v2 as coqui-tts speaks (eager, one chunk of a job at a time), 3 slots:
  jobs one at a time (one worker; the median of ``--baseline-runs``), then 2
  and 3 at once (today's independent slots);
- ``eager`` / ``compiled``: ``engines.ditto_batched`` (and ``ditto_compiled``),
  8 slots sharing one renderer, 1, 2, 3, 4 and 8 jobs at once.

Throughput is video seconds over wall seconds (first job made to last
finished, by the pod's own job records); latency a job's created to finished;
first frames and the torch allocator's peak come from a probe around the
renderer in the pod (``pod_probe``); GPU memory from NVML, sampled during each
batch. A report per call (``--out``); ``--combine`` merges reports into the
issue's keys in ``--summary`` (the renderer-only keys already there kept, under
``renderer_`` names where the pod's share them; ``pod_summary``).

On the device, with the pod's packages unpacked from ``.pod/`` (carried with
``.fetched/ditto``; docs/benchmarks.md says how that folder is made):

    PYTHONPATH=/tmp/site:runtime:devcluster:. python -m benchmarks.gpu.whole_pod \\
        --work /tmp/wp --out report.json --tokenizer .pod/whisper-en [--parts ...]

``--smoke`` runs tiny XTTS-v2 and Whisper models on a CPU (the ``eager`` part only:
Ditto's own ``StreamSDK`` needs CUDA; at 512 x 512 on two cores a warm-up
render takes minutes). Then, here:

    python -m benchmarks.gpu.whole_pod --combine a.json b.json --out \\
        benchmarks/reports/gpu-whole-pod.json --summary docs/benchmarks/gpu-batched.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from avatar_runtime.engines import model_volume
from benchmarks.gpu import pod_probe, pod_summary, whisper_volume
from benchmarks.gpu.ditto_adapter import PORTRAIT
from benchmarks.gpu.ditto_pod import _versions
from tests.runtime.server import harness

REPO = Path(__file__).resolve().parents[2]
TEXT = (
    "Welcome to the quarterly update from the whole team, recorded for everybody who could"
    " not join the meeting in person this morning, with the numbers for every region. Revenue"
    " grew in every region this year, and the new product line shipped on time, so thank you"
    " all for the hard work that made it possible."
)
SECONDS_PER_TOKEN = 1024 / 24_000  # one XTTS-v2 audio token: 1024 samples at 24 kHz
BATCHED_JOBS = (1, 2, 3, 4, 8)


def volumes(work: Path, ditto_code: Path, *, size: str, tokenizer: Path | None) -> dict[str, Any]:
    """The model volume (XTTS-v2 + Ditto) and the Whisper directory, built once per machine."""
    import torch

    from benchmarks.gpu import ditto_volume
    from tests.runtime.engines import xtts_volume

    model_dir, whisper = work / "models", work / "whisper"
    seconds: dict[str, float] = {}
    began = time.perf_counter()
    if not (work / "xtts.done").exists():
        xtts_volume.build(model_dir, size="tiny" if size == "tiny" else "full")
        checkpoint = model_dir / model_volume.XTTS_DIR / "model.pth"
        state = torch.load(checkpoint, map_location="cpu", weights_only=False)
        # As the tiny volume does: random weights pick the stop token now and then; a bias
        # it never overcomes gives every chunk exactly the capped length.
        state["model"]["gpt.mel_head.bias"][xtts_volume.XTTS_V2_ARGS["gpt_stop_audio_token"]] = -1e4
        torch.save(state, checkpoint)
        (work / "xtts.done").touch()
    seconds["xtts"] = time.perf_counter() - began
    began = time.perf_counter()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if not (work / "ditto.done").exists():
        ditto_volume.build(model_dir, ditto_code, device=device)
        (work / "ditto.done").touch()
    seconds["ditto"] = time.perf_counter() - began
    began = time.perf_counter()
    if not (whisper / "model.bin").exists():
        whisper_volume.build(
            whisper, size="tiny" if size == "tiny" else "small", tokenizer=tokenizer
        )
    seconds["whisper"] = time.perf_counter() - began
    return {"model_dir": model_dir, "whisper": whisper, "build_seconds": seconds}


def whisper_device(whisper: Path) -> dict[str, Any]:
    """Whether CTranslate2 can run the model on the GPU here (its wheels are built for CUDA
    12); the CPU with int8 otherwise."""
    try:
        import numpy as np
        from faster_whisper import WhisperModel

        model = WhisperModel(
            str(whisper), device="cuda", compute_type="float16", local_files_only=True
        )
        noise = np.random.default_rng(0).normal(0, 0.1, 16_000).astype(np.float32)
        segments, _ = model.transcribe(noise, language="en", beam_size=1)
        list(segments)  # decoding is lazy: CUDA's libraries load here
        return {"device": "cuda", "compute_type": "float16"}
    except Exception as exc:  # a missing libcublas.so.12 shows as RuntimeError or OSError
        return {"device": "cpu", "compute_type": "int8", "cuda_error": repr(exc)[:300]}


def pod_env(
    vols: dict[str, Any], asr: dict[str, Any], *, batched: bool, compiled: bool, tokens: int
) -> dict[str, str]:
    """Settings of the pod (AVATAR_RUNTIME_*), all others at their defaults."""
    import os

    prefix = "AVATAR_RUNTIME_"
    settings = {
        "ENGINES__TTS": "xtts",
        "ENGINES__RENDERER": "ditto",
        "ENGINES__MODEL_DIR": str(vols["model_dir"]),
        "ENGINES__DITTO_BATCHED": str(batched).lower(),
        "ENGINES__DITTO_COMPILED": str(compiled).lower(),
        "ENGINES__XTTS_MAX_AUDIO_TOKENS": str(tokens),
        "ENGINES__WHISPER_MODEL": str(vols["whisper"]),
        "ENGINES__WHISPER_DEVICE": asr["device"],
        "ENGINES__WHISPER_COMPUTE_TYPE": asr["compute_type"],
        "QUALITY__MAX_WER": "1e9",
        "QUALITY__MAX_CER": "1e9",
        "QUALITY__RETRIABLE_CER": "1e9",
        "STORAGE__LOCAL_BUCKETS": str(vols["buckets"]),
    }
    if not batched:  # as shipped: XTTS-v2 eager and one chunk at a time, as coqui-tts speaks
        settings |= {"ENGINES__XTTS_CUDA_GRAPHS": "false", "ENGINES__XTTS_CHUNKS_AHEAD": "0"}
    path = [str(REPO), os.environ.get("PYTHONPATH", "")]
    return {
        **{prefix + k: v for k, v in settings.items()},
        "AVATAR_BENCH_PROBE": str(vols["probe"]),
        "PYTHONPATH": ":".join(p for p in path if p),
    }


def _cli(work: Path) -> str:
    """``avatar-runtime`` with the renderer probe: the harness starts this instead."""
    script = work / "avatar-runtime-probed"
    script.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m benchmarks.gpu.pod_probe "$@"\n')
    script.chmod(0o755)
    return str(script)


def start(work: Path, label: str, *, slots: int, env: dict[str, str]) -> tuple[Any, float]:
    """A pod, and the seconds until it is ready (models loaded, compiled, warmed up)."""
    harness.CLI = _cli(work)
    began = time.perf_counter()
    runtime = harness.start_runtime(work / label, slots=slots, queue_limit=16, env=env, ready=False)
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        if runtime.process.poll() is not None:
            raise RuntimeError(f"pod exited:\n{runtime.log.read_text()[-4000:]}")
        try:
            if httpx.get(f"{runtime.url}/readyz", timeout=5).status_code == 200:
                return runtime, time.perf_counter() - began
            if httpx.get(f"{runtime.url}/healthz", timeout=5).status_code != 200:
                break  # loading failed: the pod stays up, unready, and says why
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    runtime.stop()
    raise RuntimeError(f"pod not ready:\n{runtime.log.read_text()[-4000:]}")


def _loads(runtime: Any) -> dict[str, Any]:
    """What the pod says it loaded: seconds and GPU bytes per model, its slots."""
    text = httpx.get(f"{runtime.url}/metrics", timeout=10).text
    out: dict[str, Any] = {"load_seconds": {}, "gpu_bytes": {}}
    for name, labels, value in harness.iter_metrics(text):
        if name == "avatar_runtime_model_load_seconds":
            out["load_seconds"][labels.get("model", "?")] = value
        elif name == "avatar_runtime_model_gpu_memory_bytes":
            out["gpu_bytes"][labels.get("model", "?")] = value
    return out


class _Nvml:
    """The device's used memory (NVML), its peak sampled every 50 ms while running."""

    def __init__(self) -> None:
        from avatar_runtime import gpu

        self._read = gpu.memory
        self.peak: int | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            gpus = self._read()
            if gpus:
                self.peak = max(self.peak or 0, gpus[0].used_bytes)
            self._stop.wait(0.05)

    def __enter__(self) -> _Nvml:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _stamp(value: str) -> float:
    return dt.datetime.fromisoformat(value).timestamp()


def batch(runtime: Any, count: int, tag: str, probe: Path) -> dict[str, Any]:
    """``count`` jobs posted at once; each one's latency, first frame and stages."""
    # Unique names: a pod that finds a job's record at its output renders nothing again.
    ids = [f"{tag}-{i}-{time.time_ns() % 10**9}" for i in range(count)]
    with _Nvml() as nvml, runtime.client() as api:
        posted = time.time()
        for job_id in ids:
            body = harness.job_body(job_id, PORTRAIT, runtime.out, TEXT)
            body["options"]["resolution"] = 512
            body["output"] = f"gs://bench/{job_id}/"
            api.post("/v1/jobs", json=body).raise_for_status()
        finals = [
            harness.wait_for(api, i, states={"succeeded", "failed"}, timeout=600, interval=0.05)
            for i in ids
        ]
    failed = [f for f in finals if f["state"] != "succeeded"]
    if failed:
        raise RuntimeError(f"jobs failed: {json.dumps(failed)[:3000]}")
    created = [_stamp(f["created_at"]) for f in finals]
    started = [_stamp(f["started_at"]) for f in finals]
    finished = [_stamp(f["finished_at"]) for f in finals]
    video = sum(f["video_seconds"] for f in finals)
    wall = max(finished) - min(created)
    records = sorted(pod_probe.read(probe, since=posted), key=lambda r: r["began"])[:count]
    firsts = [r["first_frame"] - posted for r in records if r["first_frame"]]
    return {
        "jobs": count,
        "wall_seconds": wall,
        "video_seconds": video,
        "video_seconds_per_second": video / wall,
        "seconds_per_video_second": wall / video,
        "job_seconds": [f - c for c, f in zip(created, finished, strict=True)],
        "job_queued_seconds": [s - c for c, s in zip(created, started, strict=True)],
        "job_video_seconds": [f["video_seconds"] for f in finals],
        "job_realtime_factors": [f["realtime_factor"] for f in finals],
        "frames": [r["frames"] for r in records],
        "first_frame_seconds": firsts,
        "stages_mean": {
            stage: statistics.mean(f["stages"][stage] for f in finals)
            for stage in finals[0]["stages"]
        },
        "uploaded_bytes": [f["outputs"]["video"]["size_bytes"] for f in finals],
        "video_url": finals[0]["outputs"]["video"]["url"],
        "peak_nvml_bytes": nvml.peak,
        "peak_torch_bytes": max((r["peak_torch_bytes"] or 0 for r in records), default=None),
    }


def part(
    label: str,
    work: Path,
    vols: dict[str, Any],
    asr: dict[str, Any],
    args: argparse.Namespace,
    out: dict[str, Any],
    save: Any,
) -> None:
    """One pod, its batches; ``out`` filled (and ``save`` called) as each batch ends."""
    batched, compiled = label != "unbatched", label == "compiled"
    env = pod_env(vols, asr, batched=batched, compiled=compiled, tokens=args.tokens)
    env |= dict(setting.split("=", 1) for setting in args.env)  # --env: a setting tried
    slots = (1 if args.smoke else 3) if label == "unbatched" else max(args.jobs)
    runtime, ready = start(work, label, slots=slots, env=env)
    out.update(slots=slots, ready_seconds=ready, env=list(args.env))
    try:
        out.update(_loads(runtime))
        save()
        if label == "unbatched":
            solo = [
                batch(runtime, 1, f"{label}-solo{i}", vols["probe"])
                for i in range(args.baseline_runs)
            ]
            out["one_worker_runs"] = solo
            out["one_worker_video_seconds_per_second"] = statistics.median(
                r["video_seconds_per_second"] for r in solo
            )
            counts = [] if args.smoke else [2, 3]
        else:
            counts = list(args.jobs)
        out["runs"] = {}
        for n in counts:
            out["runs"][str(n)] = batch(runtime, n, f"{label}-{n}", vols["probe"])
            save()
    finally:
        runtime.stop()
        out["log_tail"] = runtime.log.read_text()[-1500:]


def run(args: argparse.Namespace) -> None:
    import torch

    work: Path = args.work
    work.mkdir(parents=True, exist_ok=True)
    cuda = torch.cuda.is_available()
    record: dict[str, Any] = {
        "benchmark": "whole_pod",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "device": torch.cuda.get_device_name() if cuda else "cpu",
        "torch": torch.__version__,
        "software": _versions(),
        "text_characters": len(TEXT),
        "tokens_per_chunk": args.tokens,
        "chunk_seconds": args.tokens * SECONDS_PER_TOKEN,
        "resolution": 512,
        "smoke": args.smoke,
        "env": args.env,
    }

    def save() -> None:
        args.out.write_text(json.dumps(record, indent=2, default=str) + "\n")

    vols = volumes(
        work, args.ditto_code, size="tiny" if args.smoke else "full", tokenizer=args.tokenizer
    )
    vols["buckets"], vols["probe"] = work / "buckets", work / "probe.jsonl"
    vols["buckets"].mkdir(exist_ok=True)
    record["volume_build_seconds"] = vols["build_seconds"]
    asr = whisper_device(vols["whisper"]) if cuda else {"device": "cpu", "compute_type": "int8"}
    record["asr"] = {**asr, "model": "random-weight Whisper, small.en's size (whisper_volume)"}
    save()
    for label in args.parts:
        began = time.perf_counter()
        record[label] = {}
        try:
            part(label, work, vols, asr, args, record[label], save)
        except Exception as exc:  # keep what the other parts measured
            record[label]["error"] = repr(exc)[:4000]
        record[label]["part_seconds"] = time.perf_counter() - began
        save()
        if cuda:
            torch.cuda.empty_cache()
    print(json.dumps(pod_summary.brief(record), indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ditto-code", type=Path, default=REPO / ".fetched/ditto")
    parser.add_argument("--work", type=Path, default=Path("/tmp/whole-pod"))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--parts", default="unbatched,eager,compiled")
    parser.add_argument("--jobs", default=",".join(map(str, BATCHED_JOBS)))
    parser.add_argument("--tokens", type=int, default=94, help="audio tokens per XTTS chunk")
    parser.add_argument("--baseline-runs", type=int, default=3)
    parser.add_argument("--tokenizer", type=Path, help="an English CTranslate2 Whisper model dir")
    parser.add_argument("--smoke", action="store_true", help="tiny TTS and ASR, 1-slot baseline")
    parser.add_argument(
        "--env", action="append", default=[], help="NAME=VALUE for every pod (a setting tried)"
    )
    parser.add_argument("--combine", type=Path, nargs="+", help="reports to merge")
    parser.add_argument("--summary", type=Path, help="the issue's keys, merged into this JSON")
    parser.add_argument(
        "--paced", type=Path, nargs="+", help="compiled pods with a job speed cap, one a value"
    )
    parser.add_argument("--unpaced", type=Path, help="with --paced: the same machine's uncapped")
    parser.add_argument("--chosen", default="4.6", help="with --paced: the speed to headline")
    args = parser.parse_args()
    if args.paced:
        if args.unpaced is None or args.summary is None:
            parser.error("--paced needs --unpaced and --summary")
        summary = json.loads(args.summary.read_text())
        summary["job_max_speed"] = pod_summary.paced(args.paced, args.unpaced, args.chosen)
        args.summary.write_text(json.dumps(summary, indent=2) + "\n")
        return
    if args.combine:
        pod_summary.combine(args.combine, args.out, args.summary)
        return
    args.parts = args.parts.split(",")
    args.jobs = [int(n) for n in args.jobs.split(",")]
    run(args)


if __name__ == "__main__":
    main()
