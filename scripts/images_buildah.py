"""The few buildah calls the image scripts make, in one place.

There is no Docker engine on these machines: Debian's buildah builds the Dockerfile as root
with ``--isolation chroot`` (no OCI runtime needed) and runs commands inside the images it
built the same way. Every call goes through :func:`buildah`, so the isolation, the CA bundle
pip needs and the "never pull" rule (nothing can be pulled here; every base is local) are
set once.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

ISOLATION = "chroot"
# pip inside a build reaches PyPI only through the host's CA bundle (a TLS-intercepting
# proxy); it is mounted for each RUN and never stored in a layer.
CA_MOUNT = "/etc/ssl/certs:/etc/ssl/certs:ro"


class BuildahError(RuntimeError):
    """A buildah command failed; the message carries its output's tail."""


def require() -> None:
    """buildah and mmdebstrap must be installed (``make images`` installs them) and we root."""
    missing = [tool for tool in ("buildah", "mmdebstrap") if shutil.which(tool) is None]
    if missing:
        raise BuildahError(f"{' and '.join(missing)} not found: `make images-deps` installs them")
    if os.geteuid() != 0:
        raise BuildahError("buildah with --isolation chroot builds as root only (run as root)")


def buildah(
    args: Sequence[str], *, log: Path | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run ``buildah ARGS``; output goes to *log* when given (builds print a lot)."""
    argv = ["buildah", *args]
    if log is None:
        done = subprocess.run(argv, capture_output=True, text=True)  # noqa: S603 (our argv)
    else:
        with log.open("a") as out:
            out.write(f"$ {' '.join(argv)}\n")
            out.flush()
            done = subprocess.run(  # noqa: S603 (our argv)
                argv, stdout=out, stderr=subprocess.STDOUT, text=True
            )
    if check and done.returncode != 0:
        tail = (done.stdout or "")[-3000:] + (done.stderr or "")[-3000:]
        if log is not None:
            tail = log.read_text()[-3000:]
        raise BuildahError(f"buildah {' '.join(args[:3])} ... exited {done.returncode}:\n{tail}")
    return done


def image_config(reference: str) -> dict[str, object] | None:
    """The image's Docker config (labels, user, health check), or None when it is absent."""
    done = buildah(["inspect", "--type", "image", reference], check=False)
    if done.returncode != 0:
        return None
    info = json.loads(done.stdout)
    config = info.get("Docker", {}).get("config") or {}
    assert isinstance(config, dict)
    return config


def labels(reference: str) -> dict[str, str] | None:
    config = image_config(reference)
    if config is None:
        return None
    found = config.get("Labels") or {}
    assert isinstance(found, dict)
    return {str(k): str(v) for k, v in found.items()}
