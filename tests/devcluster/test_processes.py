"""Pods as local processes: what lets the operator find and scale runtime pods locally."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from avatar_devcluster.kubectl import Kubectl
from avatar_devcluster.waiting import wait_until

# A web server per pod, bound to the pod's own loopback address, with a readiness probe.
DEPLOYMENT = f"""
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  replicas: 0
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata:
      labels: {{app: web}}
      annotations: {{devcluster.avatar.dev/process: "true"}}
    spec:
      terminationGracePeriodSeconds: 5
      containers:
      - name: web
        image: python
        command: ["{sys.executable}", "-m", "http.server"]
        args: ["8000", "--bind", "$(POD_IP)"]
        env:
        - name: POD_IP
          valueFrom: {{fieldRef: {{fieldPath: status.podIP}}}}
        ports: [{{containerPort: 8000, name: http}}]
        readinessProbe: {{httpGet: {{path: /, port: http}}}}
"""


def pods(kubectl: Kubectl) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = json.loads(
        kubectl("get", "pods", "-l", "app=web", "-o", "json").stdout
    )["items"]
    return items


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def pid_of(pod: dict[str, Any]) -> int:
    """The pod's process, from its container id (``process://<pid>``)."""
    container_id = str(pod["status"]["containerStatuses"][0]["containerID"])
    assert container_id.startswith("process://"), container_id
    return int(container_id.removeprefix("process://"))


def listeners(address: str, port: int) -> set[int]:
    """Pids holding a listening TCP socket on ``address:port`` (Linux ``/proc``)."""
    local = f"{socket.inet_aton(address)[::-1].hex().upper()}:{port:04X}"  # little-endian
    inodes = {
        fields[9]
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]
        if (fields := line.split())[1] == local and fields[3] == "0A"  # 0A: LISTEN
    }
    pids = set()
    for fd in Path("/proc").glob("[0-9]*/fd/*"):
        with contextlib.suppress(OSError):  # gone meanwhile, or not ours to read
            if os.readlink(fd).removeprefix("socket:[").removesuffix("]") in inodes:
                pids.add(int(fd.parts[2]))
    return pids


def test_a_deployment_scales_real_processes_up_and_down(kubectl: Kubectl) -> None:
    kubectl.apply(DEPLOYMENT)
    assert pods(kubectl) == []

    kubectl("scale", "deployment", "web", "--replicas=2")
    wait_until(
        lambda: (
            len(pods(kubectl)) == 2
            and all(
                p["status"].get("containerStatuses", [{}])[0].get("ready") for p in pods(kubectl)
            )
        ),
        timeout=30,
        what="2 ready pods",
    )
    addresses = sorted(p["status"]["podIP"] for p in pods(kubectl))
    assert len(set(addresses)) == 2  # each pod its own loopback address, same port
    for address in addresses:
        with urllib.request.urlopen(f"http://{address}:8000/", timeout=5) as answer:
            assert answer.status == 200
    wait_until(
        lambda: (
            json.loads(kubectl("get", "deployment", "web", "-o", "json").stdout)["status"].get(
                "readyReplicas"
            )
            == 2
        ),
        timeout=30,
        what="the Deployment's status to count 2 ready replicas",
    )
    table = kubectl("get", "pods").stdout
    assert table.count("Running") == 2
    pids = {p["status"]["podIP"]: pid_of(p) for p in pods(kubectl)}
    for address, pid in pids.items():
        # The process, or one in its group (its children: the group the kubelet signals),
        # serves the pod's address.
        assert alive(pid)
        assert any(os.getpgid(owner) == pid for owner in listeners(address, 8000)), address

    kubectl("scale", "deployment", "web", "--replicas=0")
    wait_until(lambda: pods(kubectl) == [], timeout=30, what="the pods to go")
    assert not any(alive(pid) for pid in pids.values())
    for address in addresses:  # the processes ended: nothing answers any more
        try:
            urllib.request.urlopen(f"http://{address}:8000/", timeout=2)
        except OSError:
            continue
        raise AssertionError(f"{address} still answers after scaling to 0")


def test_deleting_a_deployment_takes_its_pods_and_processes(kubectl: Kubectl) -> None:
    kubectl.apply(DEPLOYMENT.replace("replicas: 0", "replicas: 1"))
    wait_until(lambda: len(pods(kubectl)) == 1, timeout=30, what="a pod")
    wait_until(
        lambda: bool(pods(kubectl)[0]["status"].get("podIP")), timeout=30, what="the pod to run"
    )
    address = pods(kubectl)[0]["status"]["podIP"]
    kubectl("delete", "deployment", "web")
    wait_until(lambda: pods(kubectl) == [], timeout=30, what="the pod to be collected")
    try:
        urllib.request.urlopen(f"http://{address}:8000/", timeout=2)
    except OSError:
        return
    raise AssertionError("the process still answers")


def test_a_pod_never_gets_an_address_where_another_process_holds_its_port(
    kubectl: Kubectl,
) -> None:
    """Two local systems on one machine (a test beside a benchmark) hand out the same
    loopback addresses: a pod must not be given one whose port is taken, or its server
    fails to bind and the pod fails."""
    taken = [f"127.0.0.{n}" for n in range(2, 12)]  # the first addresses a dev cluster gives
    with contextlib.ExitStack() as stack:
        port = 0
        for address in taken:  # one port, held on each of them
            holder = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            holder.bind((address, port))
            holder.listen()
            port = holder.getsockname()[1]
        kubectl.apply(DEPLOYMENT.replace("replicas: 0", "replicas: 1").replace("8000", str(port)))
        (pod,) = wait_until(
            lambda: (
                (found := pods(kubectl))
                and found[0]["status"].get("containerStatuses", [{}])[0].get("ready")
                and found
            ),
            timeout=30,
            what=lambda: f"a ready pod: {pods(kubectl)}",
        )
        address = pod["status"]["podIP"]
        assert address not in taken
        with urllib.request.urlopen(f"http://{address}:{port}/", timeout=5) as answer:
            assert answer.status == 200


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


def _served_secret_pod(*, automount: bool) -> str:
    """A pod serving its Secret volume's directory over HTTP, as the chart's operator reads
    its token file from a mount."""
    doc = yaml.safe_load(DEPLOYMENT.replace("replicas: 0", "replicas: 1"))
    spec = doc["spec"]["template"]["spec"]
    spec["serviceAccountName"] = "reader"
    spec["automountServiceAccountToken"] = automount
    spec["volumes"] = [{"name": "token", "secret": {"secretName": "api-token",
                        "items": [{"key": "token", "path": "token.txt"}]}}]  # fmt: skip
    container = spec["containers"][0]
    container["args"] += ["--directory", "/etc/api"]
    container["env"].append({"name": "TOKEN_FILE", "value": "/etc/api/token.txt"})
    container["volumeMounts"] = [{"name": "token", "mountPath": "/etc/api", "readOnly": True}]
    return json.dumps(doc)


@pytest.mark.parametrize("automount", [True, False])
def test_a_pod_reads_its_secret_volume_and_gets_the_api_only_with_its_account_token(
    kubectl: Kubectl, automount: bool
) -> None:
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "api-token"},
              "stringData": {"token": "s3cret"}}  # fmt: skip
    kubectl.apply(json.dumps(secret))
    kubectl.apply(_served_secret_pod(automount=automount))
    pod = wait_until(
        lambda: next(
            (
                p
                for p in pods(kubectl)
                if p["status"].get("containerStatuses", [{}])[0].get("ready")
            ),
            None,
        ),
        timeout=30,
        what="the pod to serve",
    )
    address = pod["status"]["podIP"]
    with urllib.request.urlopen(f"http://{address}:8000/token.txt", timeout=5) as answer:
        assert answer.read() == b"s3cret"
    env = _environ(pid_of(pod))
    assert Path(env["TOKEN_FILE"]).read_text() == "s3cret"  # the mount path, mapped
    if automount:
        config = yaml.safe_load(Path(env["KUBECONFIG"]).read_text())
        assert config["users"][0]["user"]["token"] == "system:serviceaccount:default:reader"
    else:
        assert "KUBECONFIG" not in env
