"""The model volume: where the production engines' code and weights live, and its check.

Weights are never downloaded at run time and never baked into images: a pod
mounts a directory (a PVC, or a GCS bucket through the Cloud Storage FUSE CSI
driver) laid out as below, and checks it before it loads anything. A missing
or damaged file stops the pod from becoming ready with a message naming the
file, instead of failing jobs one by one later.

    MODEL_DIR/
      xtts-v2/                   XTTS-v2 (Coqui Public Model License, non-commercial)
        config.json  model.pth  vocab.json  [speakers_xtts.pth]
      ditto/
        code/                    a checkout of antgroup/ditto-talkinghead (Apache-2.0)
          core/  stream_pipeline_offline.py  stream_pipeline_online.py
        checkpoints/             huggingface.co/digital-avatar/ditto-talkinghead
          ditto_cfg/v0.4_hubert_cfg_pytorch.pkl
          ditto_pytorch/models/*.pth  ditto_pytorch/aux_models/*
          [ditto_trt_Ampere_Plus/*.engine]   TensorRT engines, used where present
      whisper/<name>/            a CTranslate2 Whisper model (faster-whisper)
        model.bin  config.json  tokenizer.json  vocabulary.*

Each component directory may hold a ``SHA256SUMS`` file (``sha256sum`` output);
when it does, every file it lists must match.
"""

from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

XTTS_DIR = "xtts-v2"
DITTO_CODE_DIR = "ditto/code"
DITTO_CHECKPOINTS_DIR = "ditto/checkpoints"
WHISPER_DIR = "whisper"
SUMS = "SHA256SUMS"


class Kind(enum.Enum):
    """How a file is recognised as intact without loading it (cheap, at every start)."""

    JSON = "json"
    TORCH = "torch"  # torch.save: a zip archive, or a pickle of the legacy format
    PICKLE = "pickle"
    ONNX = "onnx"  # protobuf ModelProto: field 1 (ir_version) first
    FILE = "file"  # any non-empty file
    DIR = "dir"


@dataclass(frozen=True)
class Needed:
    path: str
    kind: Kind
    what: str
    optional: bool = False


def _ditto_models() -> list[Needed]:
    models = ("appearance_extractor", "decoder", "lmdm_v0.4_hubert", "motion_extractor",
              "stitch_network", "warp_network")  # fmt: skip
    aux = ("2d106det.onnx", "det_10g.onnx", "hubert_streaming_fix_kv.onnx", "landmark203.onnx")
    base = f"{DITTO_CHECKPOINTS_DIR}/ditto_pytorch"
    return [
        *(Needed(f"{base}/models/{m}.pth", Kind.TORCH, f"Ditto {m} weights") for m in models),
        *(Needed(f"{base}/aux_models/{a}", Kind.ONNX, "Ditto face/audio helper") for a in aux),
        Needed(f"{base}/aux_models/face_landmarker.task", Kind.FILE, "MediaPipe face landmarker"),
        Needed(
            f"{DITTO_CHECKPOINTS_DIR}/ditto_cfg/v0.4_hubert_cfg_pytorch.pkl",
            Kind.PICKLE,
            "Ditto pipeline configuration",
        ),
    ]


LAYOUT: dict[str, list[Needed]] = {
    "xtts": [
        Needed(f"{XTTS_DIR}/config.json", Kind.JSON, "XTTS-v2 model configuration"),
        Needed(f"{XTTS_DIR}/model.pth", Kind.TORCH, "XTTS-v2 weights"),
        Needed(f"{XTTS_DIR}/vocab.json", Kind.JSON, "XTTS-v2 tokenizer"),
        Needed(f"{XTTS_DIR}/speakers_xtts.pth", Kind.TORCH, "named voices", optional=True),
    ],
    "ditto": [
        Needed(f"{DITTO_CODE_DIR}/core", Kind.DIR, "Ditto's code (imported from the volume)"),
        Needed(f"{DITTO_CODE_DIR}/stream_pipeline_offline.py", Kind.FILE, "Ditto offline mode"),
        Needed(f"{DITTO_CODE_DIR}/stream_pipeline_online.py", Kind.FILE, "Ditto online mode"),
        *_ditto_models(),
    ],
}


def whisper_layout(name: str) -> list[Needed]:
    base = f"{WHISPER_DIR}/{name}"
    return [
        Needed(f"{base}/model.bin", Kind.FILE, f"Whisper {name} weights (CTranslate2)"),
        Needed(f"{base}/config.json", Kind.JSON, f"Whisper {name} configuration"),
        Needed(f"{base}/tokenizer.json", Kind.JSON, f"Whisper {name} tokenizer"),
    ]


class State(enum.Enum):
    OK = "ok"
    MISSING = "missing"
    DAMAGED = "damaged"
    ABSENT_OPTIONAL = "absent (optional)"


@dataclass(frozen=True)
class Finding:
    engine: str
    needed: Needed
    state: State
    detail: str = ""

    @property
    def problem(self) -> bool:
        return self.state in (State.MISSING, State.DAMAGED)


@dataclass(frozen=True)
class Report:
    model_dir: Path
    findings: list[Finding]

    @property
    def ok(self) -> bool:
        return not any(f.problem for f in self.findings)

    def problems(self) -> list[Finding]:
        return [f for f in self.findings if f.problem]

    def summary(self) -> str:
        """One line naming every missing or damaged file: what a pod that is not ready says."""
        if self.ok:
            return f"model volume {self.model_dir}: all {len(self.findings)} files present"
        return f"model volume {self.model_dir}: " + "; ".join(
            f"{f.needed.path} {f.state.value} ({f.detail or f.needed.what})"
            for f in self.problems()
        )


def _damage(path: Path, kind: Kind) -> str:
    """Why the file is not what it should be; empty when it looks intact."""
    if kind is Kind.DIR:
        return "" if path.is_dir() else "not a directory"
    if not path.is_file():
        return "not a file"
    if path.stat().st_size == 0:
        return "empty"
    with path.open("rb") as f:
        head = f.read(4)
    if kind is Kind.JSON:
        try:
            json.loads(path.read_bytes())
        except (ValueError, UnicodeDecodeError) as exc:
            return f"not valid JSON: {exc}"
    elif kind is Kind.TORCH and not (head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"):
        return "not a PyTorch checkpoint (neither a zip archive nor a pickle)"
    elif kind is Kind.PICKLE and head[:1] != b"\x80":
        return "not a pickle"
    elif kind is Kind.ONNX and head[:1] != b"\x08":
        return "not an ONNX model"
    return ""


def read_sums(directory: Path) -> dict[str, str]:
    """A component's ``SHA256SUMS`` (``sha256sum`` output) as {relative path: digest}."""
    listing = directory / SUMS
    if not listing.is_file():
        return {}
    sums = {}
    for line in listing.read_text().splitlines():
        if line.strip():
            digest, name = line.split(maxsplit=1)
            sums[name.lstrip("*")] = digest.lower()
    return sums


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def check(model_dir: Path, *, engines: Iterable[str], whisper: str | None = None) -> Report:
    """Check what ``engines`` (``xtts``, ``ditto``) and a Whisper model need from the volume."""
    needs = [(engine, n) for engine in engines for n in LAYOUT.get(engine, [])]
    if whisper is not None:
        needs += [("whisper", n) for n in whisper_layout(whisper)]
    findings = []
    sums_cache: dict[Path, dict[str, str]] = {}
    for engine, needed in needs:
        path = model_dir / needed.path
        if not path.exists():
            state = State.ABSENT_OPTIONAL if needed.optional else State.MISSING
            findings.append(Finding(engine, needed, state))
            continue
        detail = _damage(path, needed.kind)
        if not detail and needed.kind is not Kind.DIR:
            component = model_dir / needed.path.split("/")[0]
            sums = sums_cache.setdefault(component, read_sums(component))
            relative = str(path.relative_to(component))
            if relative in sums and _sha256(path) != sums[relative]:
                detail = f"sha256 differs from {SUMS}"
        findings.append(Finding(engine, needed, State.DAMAGED if detail else State.OK, detail))
    return Report(model_dir, findings)
