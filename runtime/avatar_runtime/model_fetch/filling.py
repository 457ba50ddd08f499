"""Filling the model volume: keep what is intact, fetch the rest, record it, then check it all.

Per hub source: list the files at one commit with their sizes and checksums,
keep each file already in place that matches (a second run downloads
nothing), make sure the rest fit on the disk, then download each under the
staging directory, check it and rename it into place. Then ``SHA256SUMS`` per
component, and at the end the very check ``check-models`` runs.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol

from avatar_runtime.engines import model_volume
from avatar_runtime.model_fetch import archives, digests, hub, placing
from avatar_runtime.model_fetch.errors import FetchError, Problem
from avatar_runtime.model_fetch.plans import ArchiveSource, HubSource, Plan


class Outcome(enum.Enum):
    PRESENT = "present"
    FETCHED = "fetched"


@dataclass(frozen=True, kw_only=True)
class Placed:
    path: str  # relative to the model directory
    outcome: Outcome
    size: int


class Progress(Protocol):
    """Told of each file as it is settled, so a Job's log shows headway on a long fetch."""

    def __call__(self, placed: Placed, /) -> None: ...


@dataclass(frozen=True, kw_only=True)
class Result:
    placed: list[Placed]
    commits: dict[str, str]  # source (repository or URL) -> the commit fetched
    report: model_volume.Report


def _fetch_one(listing: hub.Listing, remote: hub.RemoteFile, plan: Plan) -> digests.Measured:
    """Download one file, check it, and rename it into place; a wrong file is deleted."""
    source = listing.source
    staging = placing.staging(plan.model_dir, source.target.replace("/", "--"))
    staged = staging / remote.path
    leftover = digests.intact(staged, remote.expected)  # from a run stopped before the rename
    if leftover is None:
        staged.unlink(missing_ok=True)
        staged = hub.download(listing, remote, into=staging)
    measured = leftover or digests.measure(staged)
    difference = digests.difference(measured, remote.expected)
    if difference:
        staged.unlink()
        raise FetchError(
            Problem.CHECKSUM_MISMATCH,
            f"{source.target}/{remote.path} from {source.repo}@{listing.commit[:12]}: {difference};"
            " it was deleted, nothing was put in its place",
        )
    placing.place(staged, plan.model_dir / source.target / remote.path)
    return measured


def _entry(prefix: str, path: str) -> str:
    """A file's name in its component's ``SHA256SUMS`` (``large-v3/model.bin`` under whisper/)."""
    return f"{prefix}/{path}" if prefix else path


def _placed(
    source: HubSource, remote: hub.RemoteFile, outcome: Outcome, measured: digests.Measured
) -> Placed:
    return Placed(path=f"{source.target}/{remote.path}", outcome=outcome, size=measured.size)


def _fill_hub(source: HubSource, plan: Plan, progress: Progress) -> tuple[str, list[Placed]]:
    listing = hub.list_files(source)
    target = plan.model_dir / source.target
    component, _, prefix = source.target.partition("/")
    sums: dict[str, str] = {}
    placed: list[Placed] = []
    missing: list[hub.RemoteFile] = []
    for remote in listing.files:
        measured = digests.intact(target / remote.path, remote.expected)
        if measured is None:
            missing.append(remote)
            continue
        sums[_entry(prefix, remote.path)] = measured.sha256
        placed.append(_placed(source, remote, Outcome.PRESENT, measured))
        progress(placed[-1])
    placing.ensure_room(plan.model_dir, sum(r.expected.size for r in missing))
    try:
        for remote in missing:
            measured = _fetch_one(listing, remote, plan)
            sums[_entry(prefix, remote.path)] = measured.sha256
            placed.append(_placed(source, remote, Outcome.FETCHED, measured))
            progress(placed[-1])
    finally:  # what is in place stays recorded, even when a later file fails
        digests.record_sums(plan.model_dir / component, sums)
    return listing.commit, placed


def _fill_archive(source: ArchiveSource, plan: Plan, progress: Progress) -> list[Placed]:
    if archives.present(source, model_dir=plan.model_dir):
        outcome = Outcome.PRESENT
    else:
        entries = archives.fetch(source, model_dir=plan.model_dir)
        digests.record_sums(plan.model_dir / source.target.partition("/")[0], entries)
        outcome = Outcome.FETCHED
    size = sum(p.stat().st_size for p in (plan.model_dir / source.target).rglob("*") if p.is_file())
    placed = Placed(path=source.target, outcome=outcome, size=size)
    progress(placed)
    return [placed]


def fill(plan: Plan, *, progress: Progress) -> Result:
    """Fetch what the plan names; raises ``FetchError``, also when the final check fails."""
    plan.model_dir.mkdir(parents=True, exist_ok=True)
    placed: list[Placed] = []
    commits: dict[str, str] = {}
    with placing.disk_errors(plan.model_dir):
        for source in plan.hub:
            commits[source.repo], files = _fill_hub(source, plan, progress)
            placed += files
        for archive in plan.archives:
            placed += _fill_archive(archive, plan, progress)
            commits[archive.url] = archive.commit
        placing.clear_staging(plan.model_dir)
    report = model_volume.check(plan.model_dir, engines=plan.engines, whisper=plan.whisper)
    if not report.ok:
        raise FetchError(Problem.VOLUME_INCOMPLETE, report.summary())
    return Result(placed=placed, commits=commits, report=report)
