"""The Makefile: every target is listed by `make help`."""

from __future__ import annotations

import re

from .conftest import ROOT


def test_help_lists_every_target() -> None:
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    phony = re.search(r"^\.PHONY:(.*?)(?<!\\)$", text, flags=re.M | re.S)
    assert phony is not None
    targets = set(phony.group(1).replace("\\\n", " ").split()) - {"help"}
    helptext = text.partition("\nhelp:")[2].split("\n\n", 1)[0]
    listed = set(re.findall(r'@echo "make ([\w-]+)', helptext))
    assert targets - {"distclean"} <= listed, sorted(targets - listed)
