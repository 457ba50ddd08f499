"""A real ``kopf run`` process against the dev cluster.

kopf is what the operator is built on: if it runs here as on GKE (watches,
patches, finalizers, the status subresource, daemons, restarts), the operator's
end-to-end tests can trust the dev cluster.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from avatar_devcluster import running
from avatar_devcluster.kubectl import Kubectl
from avatar_devcluster.waiting import wait_until
from tests.devcluster.test_kubectl import widget

OPERATOR = Path(__file__).with_name("widget_operator.py")


class Kopf:
    def __init__(self, kubeconfig: Path, log: Path, output: Path) -> None:
        self.kubeconfig, self.log, self.output = kubeconfig, log, output
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig), "WIDGET_LOG": str(self.log)}
        kopf = str(Path(sys.executable).parent / "kopf")
        self.process = subprocess.Popen(
            [kopf, "run", "--standalone", "--all-namespaces", str(OPERATOR)],
            env=env,
            stdout=self.output.open("ab"),
            stderr=subprocess.STDOUT,
        )

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def events(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []


@pytest.fixture
def kopf(cluster: running.Running, tmp_path: Path, widgets: Kubectl) -> Iterator[Kopf]:
    operator = Kopf(cluster.kubeconfig, tmp_path / "handlers.log", tmp_path / "kopf.out")
    operator.start()
    yield operator
    operator.stop()


def test_kopf_handles_a_widgets_life(kopf: Kopf, widgets: Kubectl) -> None:
    widgets.apply(widget("k1", 2))
    wait_until(lambda: "create k1" in kopf.events(), timeout=30, what="the create handler")
    wait_until(
        lambda: (
            json.loads(widgets("get", "wd", "k1", "-o", "json").stdout)
            .get("status", {})
            .get("phase")
            == "Ready"
        ),
        timeout=30,
        what="status written through the status subresource",
    )
    obj = json.loads(widgets("get", "wd", "k1", "-o", "json").stdout)
    assert "example.com/widget-operator" in obj["metadata"]["finalizers"]
    wait_until(lambda: "daemon-start k1" in kopf.events(), timeout=30, what="the daemon")

    widgets.apply(widget("k1", 6))
    wait_until(lambda: "update:6 k1" in kopf.events(), timeout=30, what="the update handler")

    widgets("delete", "wd", "k1", "--timeout=30s")  # waits for kopf to release the finalizer
    assert "delete k1" in kopf.events()
    assert widgets("get", "wd", "k1", check=False).returncode != 0


def test_a_restarted_kopf_does_not_rerun_finished_handlers(kopf: Kopf, widgets: Kubectl) -> None:
    widgets.apply(widget("k2", 3))
    wait_until(lambda: "create k2" in kopf.events(), timeout=30, what="the create handler")
    kopf.stop()
    kopf.start()
    wait_until(
        lambda: kopf.events().count("daemon-start k2") == 2,
        timeout=30,
        what="the daemon restarting",
    )
    widgets.apply(widget("k2", 4))
    wait_until(
        lambda: "update:4 k2" in kopf.events(), timeout=30, what="the update after the restart"
    )
    assert kopf.events().count("create k2") == 1  # resumed from the stored state


def test_watches_resume_after_a_dev_cluster_restart(tmp_path: Path) -> None:
    """Same state file, same port: kopf keeps watching and sees what comes next."""
    state, config = tmp_path / "state.json", tmp_path / "kubeconfig"
    port = running.free_port()
    with running.in_thread(kubeconfig_path=config, state=state, port=port) as dev:
        kubectl = Kubectl(dev.kubeconfig)
        from tests.devcluster.conftest import WIDGET_CRD

        kubectl.apply(WIDGET_CRD)
        operator = Kopf(dev.kubeconfig, tmp_path / "handlers.log", tmp_path / "kopf.out")
        operator.start()
        kubectl.apply(widget("r1", 2))
        wait_until(lambda: "create r1" in operator.events(), timeout=30, what="the first create")
    try:
        with running.in_thread(kubeconfig_path=config, state=state, port=port):
            kubectl.apply(widget("r2", 2))
            wait_until(
                lambda: "create r2" in operator.events(), timeout=40, what="a create after restart"
            )
            assert operator.events().count("create r1") == 1
    finally:
        operator.stop()
