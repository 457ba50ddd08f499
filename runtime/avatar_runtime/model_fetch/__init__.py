"""Filling a model volume from its public sources (``avatar-runtime fetch-models``).

Pods never download weights; this fills the volume they mount, once, with the
layout ``engines/model_volume.py`` checks: XTTS-v2 and a faster-whisper model
and Ditto's checkpoints from the Hugging Face Hub, Ditto's code from GitHub at
a pinned commit. Every file is checked by size and checksum before it gets its
real name, and the volume is checked as ``check-models`` does at the end.
One module per step: ``plans`` (what comes from where), ``hub`` and
``archives`` (the two kinds of source), ``digests`` (checksums and
``SHA256SUMS``), ``placing`` (staging and renames), ``filling`` (the order).
"""

from avatar_runtime.model_fetch.errors import FetchError, Problem
from avatar_runtime.model_fetch.filling import Outcome, Placed, Progress, Result, fill
from avatar_runtime.model_fetch.plans import Plan, Request, build

__all__ = [
    "FetchError",
    "Outcome",
    "Placed",
    "Plan",
    "Problem",
    "Progress",
    "Request",
    "Result",
    "build",
    "fill",
]
