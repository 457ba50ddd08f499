"""Asking again until something holds: the one polling helper of the demo, tests and benchmarks.

Nothing the local system does can be awaited directly from outside it: a pod
becomes ready, a resource reaches a phase, a job finishes, each in another
process. So every caller asks the same question every so often until a
deadline; this module asks it, and every timeout reads the same way.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal, TypeVar

T = TypeVar("T")


def wait_until(
    check: Callable[[], T | Literal[False] | None],
    *,
    timeout: float,
    every: float = 0.2,
    what: str | Callable[[], str],
) -> T:
    """The first truthy value of ``check()``, asked every ``every`` seconds.

    ``check`` is asked at once and last at the deadline, ``timeout`` seconds from
    now; then ``TimeoutError`` says what was awaited. ``what`` may be a function,
    called only then, to say how things stood at the end.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        left = deadline - time.monotonic()
        if left <= 0:
            said = what() if callable(what) else what
            raise TimeoutError(f"timed out after {timeout:.4g} s waiting for {said}")
        time.sleep(min(every, left))
