"""``engagement settings``: the effective value of every setting, or the table of defaults.

Without options: each ``ENGAGEMENT_*`` variable with the value this environment gives it
(secrets shown as ``***``), marked ``(default)`` or ``(set; default ...)``, and its meaning.
``--markdown`` prints the README's table of defaults (how the README's table is regenerated);
``--defaults`` prints the defaults as plain text.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from typing import Any, TextIO

from streams.settings import Settings, describe, markdown_table

DESCRIPTION = """\
Show every ENGAGEMENT_* setting with the value it has in this environment (secrets masked),
whether it was set or is the default, and what it means. A bad value stops the command with
exit status 2, naming the variable, as it would stop a worker."""


def effective(settings: Settings) -> list[tuple[str, str, str, str]]:
    """(variable, effective value as text, default, meaning) in declaration order."""
    shown = settings.masked()
    rows = []
    for f in dataclasses.fields(Settings):
        env = f.metadata["env"]
        rows.append((env, shown[env], f.metadata["default"], f.metadata["doc"]))
    return rows


def render_effective(settings: Settings, environ: dict[str, str], out: TextIO) -> None:
    for env, value, default, doc in effective(settings):
        origin = f"set; default {default!r}" if env in environ else "default"
        print(f"{env}={value}  ({origin})\n    {doc}", file=out)


def settings_command(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    if args.markdown:
        print(markdown_table(), file=out)
        return 0
    if args.defaults:
        for env, default, doc in describe():
            print(f"{env}={default}\n    {doc}", file=out)
        return 0
    environ = {k: v for k, v in os.environ.items() if k.startswith("ENGAGEMENT_")}
    render_effective(Settings.from_env(), environ, out)
    return 0


def add_settings_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``engagement settings``."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "settings",
        help="show every setting's effective value (or the defaults)",
        description=DESCRIPTION,
    )
    which = parser.add_mutually_exclusive_group()
    which.add_argument(
        "--markdown", action="store_true", help="the defaults as the README's markdown table"
    )
    which.add_argument("--defaults", action="store_true", help="the defaults as plain text")
    parser.set_defaults(func=settings_command)
    return parser
