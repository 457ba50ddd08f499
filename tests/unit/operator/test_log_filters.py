"""kopf's per-event success lines stay out of the operator's log; what matters stays in."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from avatar_operator.log_filters import QuietEventHandlers, quiet_event_handlers


@pytest.fixture
def kopf_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    quiet_event_handlers("watched", "runtime_pod")
    caplog.set_level(logging.INFO, logger="kopf.objects")
    yield caplog
    logger = logging.getLogger("kopf.objects")
    for f in [f for f in logger.filters if isinstance(f, QuietEventHandlers)]:
        logger.removeFilter(f)


def test_raw_event_handlers_successes_are_dropped_and_the_rest_kept(
    kopf_log: pytest.LogCaptureFixture,
) -> None:
    logger = logging.getLogger("kopf.objects")
    logger.info("Handler 'watched' succeeded.")
    logger.info("Handler 'runtime_pod' succeeded.")
    logger.info("Handler 'admit' succeeded.")
    logger.error("Handler 'watched' failed with an exception. Will ignore.")
    logger.info("Creation is processed: 1 succeeded; 0 failed.")
    assert [r.getMessage() for r in kopf_log.records] == [
        "Handler 'admit' succeeded.",
        "Handler 'watched' failed with an exception. Will ignore.",
        "Creation is processed: 1 succeeded; 0 failed.",
    ]


def test_a_second_start_replaces_the_filter(kopf_log: pytest.LogCaptureFixture) -> None:
    quiet_event_handlers("watched")
    filters = list(logging.getLogger("kopf.objects").filters)
    assert sum(isinstance(f, QuietEventHandlers) for f in filters) == 1
