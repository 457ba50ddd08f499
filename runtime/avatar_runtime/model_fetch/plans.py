"""What goes where on the model volume: each component's source, pinned where it can be.

The layout is the one ``engines/model_volume.py`` checks; this module only says
where each part comes from, so the sources can change without touching the
downloaders. Ditto's code is pinned to a commit and the archive's SHA-256;
the hub repositories follow a revision (``main`` unless told otherwise) and
``SHA256SUMS`` records exactly what was fetched.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from avatar_runtime.engines import model_volume
from avatar_runtime.model_fetch.errors import FetchError, Problem

COMPONENTS = ("xtts", "whisper", "ditto")

XTTS_REPO = "coqui/XTTS-v2"
XTTS_FILES = ("config.json", "model.pth", "vocab.json", "speakers_xtts.pth")

# What faster-whisper itself downloads from a CTranslate2 repository.
WHISPER_FILES = (
    "config.json",
    "preprocessor_config.json",
    "model.bin",
    "tokenizer.json",
    "vocabulary.*",
)
DEFAULT_WHISPER = "large-v3"
# faster-whisper's names whose repository is not Systran/faster-whisper-<name>.
_WHISPER_REPOS = {
    "large": "Systran/faster-whisper-large-v3",
    "distil-large-v2": "Systran/faster-distil-whisper-large-v2",
    "distil-large-v3": "Systran/faster-distil-whisper-large-v3",
    "distil-medium.en": "Systran/faster-distil-whisper-medium.en",
    "distil-small.en": "Systran/faster-distil-whisper-small.en",
    "distil-large-v3.5": "distil-whisper/distil-large-v3.5-ct2",
    "large-v3-turbo": "mobiuslabsgmbh/faster-whisper-large-v3-turbo",
    "turbo": "mobiuslabsgmbh/faster-whisper-large-v3-turbo",
}

DITTO_REPO = "digital-avatar/ditto-talkinghead"
# Only what the runtime loads (engines/ditto_renderer.py): the PyTorch set, and the
# TensorRT set (engines built for Ampere and later GPUs) when asked for.
DITTO_PYTORCH = ("ditto_cfg/v0.4_hubert_cfg_pytorch.pkl", "ditto_pytorch/**")
DITTO_TRT = ("ditto_cfg/v0.4_hubert_cfg_trt.pkl", "ditto_trt_Ampere_Plus/**")

DITTO_CODE_REPO = "antgroup/ditto-talkinghead"
# 2025-07-11, "release pytorch model": the commit the runtime's Ditto adapter was built against.
DITTO_CODE_COMMIT = "e9191cf6cf8cb41d296239889662c27bc592c9ee"
# The tar.gz of that commit, computed from a clone the way GitHub builds its archives
# (`git archive --format=tar --prefix=ditto-talkinghead-<commit>/ <commit> | gzip -cn`), not
# from a download (no network where it was written). Should codeload's bytes differ, the
# fetch refuses them naming both digests; --ditto-code-sha256 then overrides after review.
DITTO_CODE_SHA256 = "49db3c46922c8d31301f3f9cbe3c58b67e73dde69f34ea2939efefaa12352f6e"
CODE_BASE_URL = "https://codeload.github.com"


@dataclass(frozen=True, kw_only=True)
class HubSource:
    """Files of one Hugging Face repository, filtered by ``patterns``, into ``target``."""

    component: str
    repo: str
    revision: str
    patterns: tuple[str, ...]
    target: str  # relative to the model directory, e.g. "whisper/large-v3"


@dataclass(frozen=True, kw_only=True)
class ArchiveSource:
    """A GitHub archive of one commit, unpacked into ``target``."""

    component: str
    url: str
    commit: str
    sha256: str
    target: str


@dataclass(frozen=True, kw_only=True)
class Request:
    """What the user asked for (the command's options)."""

    model_dir: Path
    components: tuple[str, ...] = COMPONENTS
    whisper: str = DEFAULT_WHISPER
    whisper_repo: str | None = None
    ditto_trt: bool = False
    ditto_commit: str = DITTO_CODE_COMMIT
    ditto_code_sha256: str | None = None
    code_base_url: str = CODE_BASE_URL
    revisions: tuple[tuple[str, str], ...] = ()  # (component, revision)


@dataclass(frozen=True, kw_only=True)
class Plan:
    """Every source to fetch, and what the final check must find."""

    model_dir: Path
    hub: tuple[HubSource, ...]
    archives: tuple[ArchiveSource, ...]
    engines: tuple[str, ...]
    whisper: str | None


def whisper_repo(name: str) -> str:
    return _WHISPER_REPOS.get(name, f"Systran/faster-whisper-{name}")


def code_url(base: str, commit: str) -> str:
    """Where GitHub serves the tar.gz of one commit (``base``: codeload, or a stand-in)."""
    return f"{base.rstrip('/')}/{DITTO_CODE_REPO}/tar.gz/{commit}"


def _code_sha256(request: Request) -> str:
    if request.ditto_code_sha256 is not None:
        return request.ditto_code_sha256.lower()
    if request.ditto_commit == DITTO_CODE_COMMIT:
        return DITTO_CODE_SHA256
    raise FetchError(
        Problem.BAD_OPTION,
        f"Ditto's code at commit {request.ditto_commit} has no pinned checksum: give"
        " --ditto-code-sha256 (sha256sum of the archive)",
    )


def build(request: Request) -> Plan:
    """Turn the options into sources; refuses unknown components and unpinned code."""
    unknown = set(request.components) - set(COMPONENTS)
    unknown |= {c for c, _ in request.revisions} - set(COMPONENTS)
    if unknown:
        raise FetchError(Problem.BAD_OPTION, f"unknown component(s): {', '.join(sorted(unknown))}")
    revisions = dict(request.revisions)
    hub: list[HubSource] = []
    archives: list[ArchiveSource] = []
    if "xtts" in request.components:
        hub.append(
            HubSource(
                component="xtts",
                repo=XTTS_REPO,
                revision=revisions.get("xtts", "main"),
                patterns=XTTS_FILES,
                target=model_volume.XTTS_DIR,
            )
        )
    if "whisper" in request.components:
        if not request.whisper or "/" in request.whisper or request.whisper.startswith("."):
            raise FetchError(Problem.BAD_OPTION, f"not a Whisper model name: {request.whisper!r}")
        hub.append(
            HubSource(
                component="whisper",
                repo=request.whisper_repo or whisper_repo(request.whisper),
                revision=revisions.get("whisper", "main"),
                patterns=WHISPER_FILES,
                target=f"{model_volume.WHISPER_DIR}/{request.whisper}",
            )
        )
    if "ditto" in request.components:
        hub.append(
            HubSource(
                component="ditto",
                repo=DITTO_REPO,
                revision=revisions.get("ditto", "main"),
                patterns=DITTO_PYTORCH + (DITTO_TRT if request.ditto_trt else ()),
                target=model_volume.DITTO_CHECKPOINTS_DIR,
            )
        )
        archives.append(
            ArchiveSource(
                component="ditto",
                url=code_url(request.code_base_url, request.ditto_commit),
                commit=request.ditto_commit,
                sha256=_code_sha256(request),
                target=model_volume.DITTO_CODE_DIR,
            )
        )
    engines = tuple(c for c in ("xtts", "ditto") if c in request.components)
    whisper = request.whisper if "whisper" in request.components else None
    return Plan(
        model_dir=request.model_dir,
        hub=tuple(hub),
        archives=tuple(archives),
        engines=engines,
        whisper=whisper,
    )
