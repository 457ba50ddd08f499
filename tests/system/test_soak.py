"""A short chaos soak in every test run: pods SIGKILLed and the operator restarted under load.

``benchmarks.soak`` is ``make soak`` (five minutes, 200 videos); this is the same
soak at a minute and 40 videos, with two pod kills and one operator restart. All
real: the dev cluster, three runtime pods, ``kopf run``, kubectl.
"""

from __future__ import annotations

from pathlib import Path

from benchmarks.soak import SoakPlan, run_soak


def test_no_video_is_lost_stuck_rendered_twice_or_half_written_under_chaos(
    tmp_path: Path,
) -> None:
    plan = SoakPlan(
        seconds=60,
        resources=40,
        poison=2,
        pod_kill_every=20,
        operator_restart_every=40,
        settle=150,
    )
    report = run_soak(plan, tmp_path)
    assert report["kills"] >= 2, report["chaos"]
    assert report["restarts"] >= 1, report["chaos"]
    assert report["lost"] == []
    assert report["problems"] == []
    assert report["phases"] == {"Succeeded": 40, "Failed": 2}
    assert report["duplicates"] == []
    assert report["undecodable"] == []
    assert report["partial_files"] == []
    assert report["kubectl_failures"] == 0, report["chaos"]["kubectl_failures"]
    assert report["ok"]
