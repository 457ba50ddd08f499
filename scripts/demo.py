"""``make demo``: the whole system on this machine, and one AvatarVideo through it.

``up`` starts the local Kubernetes API, applies the CRDs, creates the runtime
Deployment (its pods are real runtime processes with the embedded engines),
starts the operator (``kopf run``), applies ``examples/hello.yaml``, shows its
progress and prints where the outputs are. Everything keeps running for
``kubectl`` afterwards, until ``down`` (``make demo-stop``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml
from tqdm import tqdm

from avatar_devcluster import running, stack

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "hello.yaml"


class Demo:
    def __init__(self, root: Path) -> None:
        self.root = root.absolute()
        self.kubeconfig = self.root / "kubeconfig"
        self.buckets = self.root / "buckets"
        self.logs = self.root / "logs"

    # -- processes --------------------------------------------------------------------------

    def _pidfile(self, name: str) -> Path:
        return self.root / f"{name}.pid"

    def _spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        with (self.logs / f"{name}.log").open("ab") as log:
            process = subprocess.Popen(  # noqa: S603 - our own programs
                argv,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # survives `make demo` returning
                cwd=REPO,
            )
        self._pidfile(name).write_text(str(process.pid))

    def _stop(self, name: str) -> bool:
        pidfile = self._pidfile(name)
        if not pidfile.exists():
            return False
        pid = int(pidfile.read_text())
        pidfile.unlink()
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return False
        for _ in range(150):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return True
            time.sleep(0.2)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        return True

    def down(self) -> None:
        stopped = [n for n in ("operator", "devcluster") if self._stop(n)]
        print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))

    # -- kubectl ----------------------------------------------------------------------------

    def kubectl(self, *args: str, stdin: str | None = None) -> str:
        search = f"{os.environ.get('PATH', '')}:{Path(sys.executable).parent}"
        binary = shutil.which("kubectl", path=search)
        if binary is None:
            sys.exit("kubectl is missing: `make demo` installs it into .venv/bin")
        done = subprocess.run(  # noqa: S603 - kubectl with our arguments
            [binary, "--kubeconfig", str(self.kubeconfig), *args],
            input=stdin,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            sys.exit(f"kubectl {' '.join(args)} failed:\n{done.stderr}")
        return done.stdout

    def _get(self, *args: str) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(self.kubectl("get", *args, "-o", "json"))
        return result

    # -- up -----------------------------------------------------------------------------------

    def up(self, *, replicas: int, slots: int, port: int) -> None:
        self.down()
        shutil.rmtree(self.root / "cluster", ignore_errors=True)
        self.root.mkdir(parents=True, exist_ok=True)
        self._portrait()

        port = port or running.free_port()
        self._spawn(
            "devcluster",
            [
                str(Path(sys.executable).parent / "avatar-devcluster"), "serve",
                "--port", str(port),
                "--kubeconfig", str(self.kubeconfig),
                "--state", str(self.root / "cluster" / "state.json"),
            ],
        )  # fmt: skip
        self._wait(f"http://127.0.0.1:{port}/version", "the local Kubernetes API")
        print(f"Kubernetes API: http://127.0.0.1:{port}   (KUBECONFIG={self.kubeconfig})")

        self.kubectl("apply", "-f", str(REPO / "crds"))
        token = secrets.token_urlsafe(24)
        manifest = stack.runtime_deployment(buckets=self.buckets, replicas=replicas, slots=slots)
        (self.root / "runtime-deployment.json").write_text(manifest)
        documents = [json.loads(stack.token_secret(token)), json.loads(manifest)]
        self.kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all(documents))

        metrics_port = running.free_port()
        env = stack.operator_env(kubeconfig=self.kubeconfig, token=token, metrics_port=metrics_port)
        self._spawn("operator", stack.operator_command(), env)
        print(f"Operator: kopf run (log {self.logs / 'operator.log'}), "
              f"metrics http://127.0.0.1:{metrics_port}/metrics")  # fmt: skip

        self._wait_for_pods(replicas)
        self.kubectl("apply", "-f", str(EXAMPLE))
        print(f"Applied {EXAMPLE.relative_to(REPO)}")
        status = self._follow("hello")
        self._report(status, metrics_port)

    def _portrait(self) -> None:
        from PIL import Image
        from skimage import data

        path = self.buckets / "avatar-demo" / "portrait.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(data.astronaut()).save(path)

    def _wait(self, url: str, what: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(url, timeout=2),  # noqa: S310 - our own loopback URL
            ):
                return
            time.sleep(0.2)
        sys.exit(f"{what} did not start; see {self.logs}")

    def _wait_for_pods(self, replicas: int) -> None:
        with tqdm(total=replicas, desc="runtime pods ready (loading models)", unit="pod") as bar:
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                pods = self._get("pods", "-l", stack.POOL_LABEL)["items"]
                ready = sum(stack.pod_ready(p) for p in pods)
                bar.update(ready - bar.n)
                if ready >= replicas:
                    return
                time.sleep(0.5)
        sys.exit(f"runtime pods not ready after 300 s; see {self.root / 'cluster' / 'pods'}")

    def _follow(self, name: str) -> dict[str, Any]:
        with tqdm(total=100, desc=f"{name}: Pending", unit="%") as bar:
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline:
                status = self._get("avatarvideo", name).get("status") or {}
                phase = status.get("phase") or "Pending"
                stage = status.get("stage")
                bar.set_description(f"{name}: {phase}" + (f" ({stage})" if stage else ""))
                bar.update(int(status.get("progress") or 0) - bar.n)
                if phase in ("Succeeded", "Failed", "Cancelled"):
                    return status
                time.sleep(0.3)
        sys.exit("the video did not finish in 10 minutes; see the operator log")

    def _report(self, status: dict[str, Any], metrics_port: int) -> None:
        if status.get("phase") != "Succeeded":
            error = status.get("error") or {}
            sys.exit(f"hello {status.get('phase')}: {error.get('code')}: {error.get('message')}")
        seconds = status["videoSeconds"]
        took = seconds * status["realtimeFactor"]
        print(f"\nRendered {seconds:.1f} s of video in {took:.1f} s on {status['runtimePod']}.")
        for kind in ("video", "captions", "thumbnail"):
            url = status["outputs"][kind]["url"]
            local = _shown(self.buckets / url.removeprefix("gs://"))
            print(f"  {kind:<9} {url}\n            on this machine: {local}")
        print(
            f"""
The system keeps running. Try:
  export KUBECONFIG={self.kubeconfig}
  kubectl get avatarvideos -w
  kubectl describe avatarvideo hello
  kubectl apply -f examples/invalid-text-and-audio.yaml   # refused by the API, says why
  curl -s http://127.0.0.1:{metrics_port}/metrics | grep avatar_operator_
Stop it with: make demo-stop"""
        )


def _shown(path: Path) -> Path:
    return path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=["up", "down"])
    parser.add_argument("--dir", type=Path, default=Path("out/demo"))
    parser.add_argument("--replicas", type=int, default=2, help="runtime pods (default 2)")
    parser.add_argument("--slots", type=int, default=1, help="job slots per pod (default 1)")
    parser.add_argument("--port", type=int, default=0, help="API port (default: a free one)")
    args = parser.parse_args()
    demo = Demo(args.dir)
    if args.command == "up":
        demo.up(replicas=args.replicas, slots=args.slots, port=args.port)
    else:
        demo.down()


if __name__ == "__main__":
    main()
