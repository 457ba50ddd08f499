"""What a killed process left is swept by the next one, and nothing a live one holds.

The killed process is real: a child Python process that opens its corner, starts a
job's partial outputs (journal first, as ``storage`` does) and SIGKILLs itself.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from avatar_runtime.pipeline.workspace import JOURNAL, Workspace, sweep

KILLED_MID_UPLOAD = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from avatar_runtime.pipeline.storage import _note, _partial_name
    from avatar_runtime.pipeline.workspace import JOURNAL, Workspace

    work, out = Path(sys.argv[1]), Path(sys.argv[2])
    corner = Workspace(work).open()
    scratch = corner / "avatar-job-x"
    scratch.mkdir()
    (scratch / "audio.wav").write_bytes(b"RIFF")
    for name in ("captions.vtt", "thumbnail.jpg"):
        partial = _partial_name(str(out / name), local=True)
        _note(scratch / JOURNAL, partial)
        Path(partial).write_bytes(b"half")
    print(corner, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
    """
)


def _killed_mid_upload(work: Path, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [sys.executable, "-c", KILLED_MID_UPLOAD, str(work), str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr
    return Path(done.stdout.strip())


def test_a_killed_process_s_scratch_and_partial_outputs_are_swept_at_the_next_start(
    tmp_path: Path,
) -> None:
    work, out = tmp_path / "work", tmp_path / "bucket" / "videos" / "a"
    corner = _killed_mid_upload(work, out)
    (out / "video.mp4").write_bytes(b"a finished video of another attempt")
    assert len(list(out.glob(".*.partial-*"))) == 2
    assert corner.is_dir()

    workspace = Workspace(work)
    mine = workspace.open()
    try:
        assert not corner.exists()
        assert not list(out.glob(".*.partial-*"))
        assert (out / "video.mp4").is_file()  # only what the journal named
        assert mine.is_dir()
    finally:
        workspace.close()
    assert not mine.exists()


def test_a_live_process_s_corner_is_never_swept(tmp_path: Path) -> None:
    """The local system's pods share /tmp: another pod's corner is locked while it lives."""
    live = Workspace(tmp_path)
    corner = live.open()
    (corner / "avatar-job-y").mkdir()
    try:
        assert sweep(tmp_path).corners == 0
        assert (corner / "avatar-job-y").is_dir()
    finally:
        live.close()


def test_only_corners_and_partials_are_touched(tmp_path: Path) -> None:
    """A journal that names other files (damaged, or written by hand) removes nothing."""
    precious = tmp_path / "precious.txt"
    precious.write_text("keep me")
    (tmp_path / "avatar-runtime-notes").mkdir()  # not the corner pattern
    corner = tmp_path / "avatar-runtime-host-123-0badcafe"
    (corner / "avatar-job-z").mkdir(parents=True)
    (corner / ".lock").write_bytes(b"")
    (corner / "avatar-job-z" / JOURNAL).write_text(f"{precious}\n/etc/passwd\n")
    swept = sweep(tmp_path)
    assert (swept.corners, swept.partials) == (1, 0)
    assert precious.read_text() == "keep me"
    assert (tmp_path / "avatar-runtime-notes").is_dir()
    assert not corner.exists()


def test_a_corner_being_made_is_not_swept(tmp_path: Path) -> None:
    """Made under a hidden name, locked, then renamed: never visible unlocked."""
    making = tmp_path / ".avatar-runtime-host-1-00000000"
    making.mkdir()  # its maker has not opened the lock file yet
    assert sweep(tmp_path).corners == 0
    assert making.is_dir()
    assert os.listdir(tmp_path) == [making.name]
