"""The Hugging Face Hub, through ``huggingface_hub``: a repository's files with their checksums,
and one file downloaded at a time.

``huggingface_hub`` reads ``HF_TOKEN`` (gated and private repositories) and
retries a dropped connection from the bytes already written (within a run: a
run that is killed loses only the file it was on, which the next run redoes,
never the files already in place). ``HF_ENDPOINT`` (a mirror, or the tests'
stand-in) is read here at each call, so it need not be set before the library
is imported. Every error it raises leaves this module as a ``FetchError`` that
says what to do.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from huggingface_hub import HfApi, constants, hf_hub_download
from huggingface_hub.errors import (
    GatedRepoError,
    HfHubHTTPError,
    LocalEntryNotFoundError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
    XetDownloadError,
)

# The HTTP client's module, whichever huggingface_hub uses (its stable alias across versions).
from huggingface_hub.utils import httpx as hub_httpx  # type: ignore[attr-defined]

from avatar_runtime.model_fetch import digests
from avatar_runtime.model_fetch.errors import FetchError, Problem
from avatar_runtime.model_fetch.plans import HubSource


@dataclass(frozen=True, kw_only=True)
class RemoteFile:
    path: str
    expected: digests.Expected


@dataclass(frozen=True, kw_only=True)
class Listing:
    """The files of ``source`` at one commit: every download then asks for that commit."""

    source: HubSource
    commit: str
    files: tuple[RemoteFile, ...]


def endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", constants.ENDPOINT).rstrip("/")


def list_files(source: HubSource) -> Listing:
    """The repository's files that match the source's patterns, with size and checksum."""
    with _translated(source):
        info = HfApi(endpoint=endpoint()).model_info(
            source.repo, revision=source.revision, files_metadata=True
        )
    files = []
    for sibling in info.siblings or []:
        if not any(fnmatch.fnmatch(sibling.rfilename, p) for p in source.patterns):
            continue
        if sibling.rfilename.startswith("/") or ".." in sibling.rfilename.split("/"):
            raise FetchError(
                Problem.SERVER_ERROR,
                f"{endpoint()} lists a path outside the repository: {sibling.rfilename!r}",
            )
        if sibling.lfs is not None:
            expected = digests.Expected(size=sibling.lfs.size, sha256=sibling.lfs.sha256)
        elif sibling.size is not None and sibling.blob_id is not None:
            expected = digests.Expected(size=sibling.size, git_sha1=sibling.blob_id)
        else:
            raise FetchError(
                Problem.SERVER_ERROR,
                f"{endpoint()} lists no size or checksum for {source.repo}/{sibling.rfilename}",
            )
        files.append(RemoteFile(path=sibling.rfilename, expected=expected))
    if not files:
        raise FetchError(
            Problem.NOT_FOUND,
            f"{source.repo}@{source.revision} has no file matching {', '.join(source.patterns)}",
        )
    if info.sha is None:
        raise FetchError(Problem.SERVER_ERROR, f"{endpoint()} gives no commit for {source.repo}")
    return Listing(source=source, commit=info.sha, files=tuple(files))


def download(listing: Listing, remote: RemoteFile, *, into: Path) -> Path:
    """Download one file under ``into`` (huggingface_hub writes a temporary file, then renames)."""
    with _translated(listing.source, remote.path):
        path = hf_hub_download(
            listing.source.repo,
            remote.path,
            revision=listing.commit,
            local_dir=into,
            endpoint=endpoint(),
        )
    return Path(path)


@contextmanager
def _translated(source: HubSource, path: str | None = None) -> Iterator[None]:
    """huggingface_hub's exceptions as ``FetchError``: what failed and what to do about it."""
    repo, where = source.repo, endpoint()
    what = f"{repo}/{path}" if path else repo
    token = "set HF_TOKEN to a Hugging Face token (read access)"  # noqa: S105 (advice, no secret)
    try:
        yield
    except GatedRepoError:
        raise FetchError(
            Problem.NOT_AUTHORISED,
            f"{repo} is gated: log in at {where}/{repo} and accept its licence, then {token}"
            " of that account",
        ) from None
    except RepositoryNotFoundError as exc:
        if exc.response.status_code in (401, 403):
            raise FetchError(
                Problem.NOT_AUTHORISED, f"{where} refused {what} without a valid token: {token}"
            ) from None
        raise FetchError(Problem.NOT_FOUND, f"no repository {repo} on {where}") from None
    except RevisionNotFoundError:
        raise FetchError(Problem.NOT_FOUND, f"{repo} has no revision {source.revision}") from None
    except RemoteEntryNotFoundError:
        raise FetchError(Problem.NOT_FOUND, f"{where} does not serve {what}") from None
    except HfHubHTTPError as exc:
        status = exc.response.status_code
        if status in (401, 403):
            raise FetchError(
                Problem.NOT_AUTHORISED, f"{where} refused {what} ({status}): {token}"
            ) from None
        raise FetchError(Problem.SERVER_ERROR, f"{where} answered {status} for {what}") from None
    except (LocalEntryNotFoundError, XetDownloadError, hub_httpx.TransportError) as exc:
        cause = exc.__cause__ or exc
        raise FetchError(
            Problem.UNREACHABLE,
            f"cannot reach {where} for {what} ({type(cause).__name__}: {cause});"
            " check the network, or set HF_ENDPOINT to a mirror",
        ) from None
    except OSError as exc:
        if str(exc).startswith("Consistency check failed"):  # the body's size differed
            raise FetchError(
                Problem.CHECKSUM_MISMATCH, f"{what}: the download was cut short ({exc})"
            ) from None
        raise
