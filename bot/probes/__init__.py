"""The inference probe's wire formats: one module per API dialect, all behind
:class:`bot.probes.wire.WireFormat`.

A format is found by its name (the config's ``probe.wire``): the module
``bot/probes/<name>.py`` holds ``FORMAT``, whose ``name`` is that name. Adding a dialect is
adding that one file (and its name to ``config.schema.WireName``, which the config checks).
"""

from __future__ import annotations

import importlib
from typing import get_args

from bot.probes.wire import WireFormat
from config.schema import WireName

#: The formats there are (a name outside this list never reaches importlib).
WIRE_FORMATS: tuple[str, ...] = get_args(WireName)


def wire_format(name: str) -> WireFormat:
    if name not in WIRE_FORMATS:
        raise LookupError(f"no wire format {name!r}: one of {', '.join(WIRE_FORMATS)}")
    module = importlib.import_module(f"bot.probes.{name}")
    found = getattr(module, "FORMAT", None)
    if not isinstance(found, WireFormat) or found.name != name:
        raise LookupError(f"bot/probes/{name}.py defines no FORMAT named {name!r}")
    return found
