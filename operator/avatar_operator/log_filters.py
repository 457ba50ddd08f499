"""What kopf logs that the operator keeps out of its log.

kopf logs every handler's success at INFO. For the raw event handlers (every watch
event of every video and runtime pod) that is ~6 lines a video, 80% of the log at
fleet scale and ~8% of the event loop's time in a 10,000-video burst, and says
nothing: they cannot fail in a way the line would report. The create, resume and
delete handlers' lines stay (one a video), and so does everything at WARNING or above.
"""

from __future__ import annotations

import logging


class QuietEventHandlers(logging.Filter):
    def __init__(self, handlers: tuple[str, ...]) -> None:
        super().__init__()
        self._noise = tuple(f"Handler '{name}' succeeded" for name in handlers)

    def filter(self, record: logging.LogRecord) -> bool:
        return not (
            record.levelno <= logging.INFO
            and isinstance(record.msg, str)
            and record.msg.startswith(self._noise)
        )


def quiet_event_handlers(*handlers: str) -> None:
    """Drop kopf's success lines of these (raw event) handlers from ``kopf.objects``."""
    logger = logging.getLogger("kopf.objects")
    for old in [f for f in logger.filters if isinstance(f, QuietEventHandlers)]:
        logger.removeFilter(old)  # a second start in one process replaces, not stacks
    logger.addFilter(QuietEventHandlers(handlers))
