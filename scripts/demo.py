"""``make demo``: the whole system on this machine, and one AvatarVideo through it.

``up`` starts the local Kubernetes API (``avatar_devcluster.local_system``) and
installs the system into it with the real ``helm install`` of charts/avatar-video, the
chart a GKE user installs, with the dev cluster's overlay
(charts/avatar-video/values-devcluster.yaml: the pods run as local processes, the
embedded engines on CPU): the CRDs, the operator (``kopf run``, as the chart's
Deployment runs it), its RBAC, the runtime token, and the default AvatarRuntimePool,
whose pods the operator creates and sizes. It then applies ``examples/hello.yaml``,
shows its progress and prints where the outputs are.
Everything keeps running for ``kubectl`` afterwards, until ``down``
(``make demo-stop``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from tqdm import tqdm

from avatar_devcluster import stack
from avatar_devcluster.local_system import RELEASE, LocalSystem
from avatar_devcluster.waiting import wait_until

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "hello.yaml"
FINISHED = ("Succeeded", "Failed", "Cancelled")


def up(root: Path, *, replicas: int, slots: int, port: int) -> None:
    down(root)
    system = LocalSystem(root, port=port, detached=True, chart=True)
    _portrait(system.buckets)
    with system:
        print(f"Kubernetes API: {system.url}   (KUBECONFIG={system.kubeconfig})")
        pool = {"minReplicas": replicas, "maxReplicas": max(replicas, 2), "slotsPerPod": slots}
        system.install_chart(pool=pool)
        print(
            f"helm install {RELEASE} charts/avatar-video -f {_shown(stack.CHART_VALUES)}"
            f" (release in namespace default; `helm list` with the KUBECONFIG below)"
        )
        print(f"Operator: the chart's Deployment (logs {system.root / 'cluster' / 'pods'}),"
              f" metrics {system.metrics_url}")  # fmt: skip

        _wait_for_pods(system, replicas)
        system.kubectl("apply", "-f", str(EXAMPLE))
        print(f"Applied {EXAMPLE.relative_to(REPO)}")
        _report(system, _follow(system, "hello"))


def down(root: Path) -> None:
    stopped = LocalSystem.stop_detached(root.absolute())
    print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))


def _portrait(buckets: Path) -> None:
    from PIL import Image
    from skimage import data

    path = buckets / "avatar-demo" / "portrait.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(data.astronaut()).save(path)


def _wait_for_pods(system: LocalSystem, replicas: int) -> None:
    with tqdm(total=replicas, desc="runtime pods ready (loading models)", unit="pod") as bar:

        def ready() -> bool:
            count = len(system.runtime_pods())
            bar.update(count - bar.n)
            return count >= replicas

        wait_until(ready, timeout=300, every=0.5, what=f"{replicas} ready runtime pods")


def _follow(system: LocalSystem, name: str) -> dict[str, Any]:
    with tqdm(total=100, desc=f"{name}: Pending", unit="%") as bar:

        def finished() -> dict[str, Any] | None:
            got = system.kubectl("get", "avatarvideo", name, "-o", "json").stdout
            status: dict[str, Any] = json.loads(got).get("status") or {}
            phase = status.get("phase") or "Pending"
            stage = status.get("stage")
            bar.set_description(f"{name}: {phase}" + (f" ({stage})" if stage else ""))
            bar.update(int(status.get("progress") or 0) - bar.n)
            return status if phase in FINISHED else None

        return wait_until(finished, timeout=600, every=0.3, what=f"{name} to finish")


def _report(system: LocalSystem, status: dict[str, Any]) -> None:
    if status.get("phase") != "Succeeded":
        error = status.get("error") or {}
        sys.exit(f"hello {status.get('phase')}: {error.get('code')}: {error.get('message')}")
    seconds = status["videoSeconds"]
    took = seconds * status["realtimeFactor"]
    print(f"\nRendered {seconds:.1f} s of video in {took:.1f} s on {status['runtimePod']}.")
    for kind in ("video", "captions", "thumbnail"):
        url = status["outputs"][kind]["url"]
        print(f"  {kind:<9} {url}\n            on this machine: {_shown(system.local(url))}")
    print(
        f"""
The system keeps running. Try:
  export KUBECONFIG={system.kubeconfig}
  kubectl get avatarvideos -w
  kubectl get avatarruntimepools -o wide    # the pool the operator sizes
  helm list; helm get values {RELEASE}
  kubectl describe avatarvideo hello
  kubectl apply -f examples/invalid-text-and-audio.yaml   # refused by the API, says why
  curl -s {system.metrics_url} | grep avatar_operator_
Stop it with: make demo-stop"""
    )


def _shown(path: Path) -> Path:
    return path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=["up", "down"])
    parser.add_argument("--dir", type=Path, default=Path("out/demo"))
    parser.add_argument("--replicas", type=int, default=2, help="the pool's minimum pods (2)")
    parser.add_argument("--slots", type=int, default=1, help="job slots per pod (default 1)")
    parser.add_argument("--port", type=int, default=0, help="API port (default: a free one)")
    args = parser.parse_args()
    if args.command == "down":
        down(args.dir)
        return
    try:
        up(args.dir, replicas=args.replicas, slots=args.slots, port=args.port)
    except (TimeoutError, RuntimeError) as exc:  # kubectl's errors too
        sys.exit(f"{exc}\nlogs: {args.dir / 'logs'}, {args.dir / 'cluster' / 'pods'}")


if __name__ == "__main__":
    main()
