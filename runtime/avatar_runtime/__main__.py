"""``python -m avatar_runtime`` is the same as the ``avatar-runtime`` command."""

from avatar_runtime.cli import main

raise SystemExit(main())
