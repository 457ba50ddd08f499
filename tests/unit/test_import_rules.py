"""The import rules cannot fall behind the code: a new runtime module is covered at once.

``lint-imports`` checks the contracts in ``.importlinter``; a forbidden-modules
contract only forbids what it lists, so this checks that the operator's list
names every part of the runtime but its contract (``avatar_runtime.api``).
"""

from __future__ import annotations

import configparser
import pkgutil
from pathlib import Path

import avatar_runtime

REPO = Path(__file__).resolve().parents[2]


def test_the_operator_may_import_no_part_of_the_runtime_but_its_api() -> None:
    config = configparser.ConfigParser()
    config.read(REPO / ".importlinter")
    contract = config["importlinter:contract:operator-knows-only-the-api"]
    assert contract["source_modules"].split() == ["avatar_operator"]
    forbidden = set(contract["forbidden_modules"].split())
    parts = {
        f"avatar_runtime.{module.name}"
        for module in pkgutil.iter_modules(avatar_runtime.__path__)
        if module.name not in ("api", "__main__")
    }
    assert parts - forbidden == set(), "add these to the contract in .importlinter"
    assert "avatar_runtime.api" not in forbidden
