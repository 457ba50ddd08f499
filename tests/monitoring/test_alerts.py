"""The alert rules with Prometheus' own tool: they load, and each fires and stays silent
where tests/monitoring/alerts_test.yaml says (``promtool test rules``)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.monitoring.promql import ALERTS, alert_rules

TESTS = Path(__file__).with_name("alerts_test.yaml")


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    if binary is None:
        pytest.fail("promtool is missing: `make test` installs Debian's prometheus package")
    return subprocess.run(
        [binary, *args], capture_output=True, text=True, timeout=60, check=False,
        cwd=TESTS.parent,
    )  # fmt: skip


def test_the_rules_load() -> None:
    done = _promtool("check", "rules", str(ALERTS))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(list(alert_rules()))} rules found" in done.stdout


def test_each_alert_fires_and_stays_silent_as_its_unit_tests_say() -> None:
    done = _promtool("test", "rules", TESTS.name)
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_alert_has_a_case_that_fires_and_one_that_does_not() -> None:
    cases = [c for t in yaml.safe_load(TESTS.read_text())["tests"] for c in t["alert_rule_test"]]
    alerts = {name for name, _ in alert_rules()}
    assert {c["alertname"] for c in cases if c["exp_alerts"]} == alerts
    assert {c["alertname"] for c in cases if not c["exp_alerts"]} == alerts
    for case in cases:  # what a person reads when it fires is checked too
        for alert in case["exp_alerts"]:
            assert alert["exp_annotations"]["summary"], case
