"""Build the pure core :mod:`agents.logic` as mypyc extension modules under ``build/`` (``make
compiled``; not imported at run time).

The outputs go to :data:`agents.logic.BUILD_DIR` (``build/compiled``), never next to the ``.py``
files: ``agents/logic/<module>.<abi>.so`` and mypyc's shared runtime ``<group>__mypyc.<abi>.so`` at
its top level. The stamp written last (:data:`agents.logic.STAMP_NAME`) records the digest of the
sources the modules were compiled from; :mod:`agents.logic` loads them only while that digest is
the sources' current one, and otherwise runs the ``.py`` files (see its docstring).
"""

from __future__ import annotations

import logging
import shutil
import sys
import time
from pathlib import Path

# Loading agents.logic here must not warn that the modules this very script builds are missing.
logging.getLogger("agents.logic").addHandler(logging.NullHandler())

from agents import logic  # noqa: E402

# Modules left as Python, and why. Everything else in agents/logic is compiled.
EXCLUDED: dict[str, str] = {
    "__init__.py": "the loader itself: it must run before it can pick compiled modules",
    # Settings holds its Funnel and Step objects and is pickled to the ingest process; a frozen
    # dataclass compiled by mypyc cannot be unpickled (its __setstate__ meets the frozen
    # __setattr__: FrozenInstanceError). Only used per event when funnels are configured.
    "funnels.py": "its frozen dataclasses travel pickled in Settings (ingest process)",
}


def sources(root: Path) -> list[Path]:
    """The agents/logic modules to compile, relative to ``root``."""
    return [
        path.relative_to(root)
        for path in sorted((root / logic.PACKAGE_DIR).glob("*.py"))
        if path.name not in EXCLUDED
    ]


def main() -> int:
    from mypyc.build import mypycify  # the dev extra's mypy ships mypyc
    from setuptools import Distribution

    root = Path(logic.__file__).resolve().parents[2]
    build = root / logic.BUILD_DIR
    stamp = build / logic.STAMP_NAME
    stamp.unlink(missing_ok=True)  # a failed build must leave nothing that looks current
    shutil.rmtree(build, ignore_errors=True)
    digest = logic.sources_digest(root)  # taken before compiling: an edit meanwhile makes it stale
    modules = sources(root)
    started = time.monotonic()
    extensions = mypycify(
        [str(path) for path in modules],
        opt_level="3",
        target_dir=str(root / "build" / "mypyc-c"),
        group_name="engagement_logic",
    )
    dist = Distribution({"name": "engagement-logic-compiled", "ext_modules": extensions})
    command = dist.get_command_obj("build_ext")
    command.build_lib = str(build)
    command.build_temp = str(root / "build" / "mypyc-obj")
    command.parallel = 2
    dist.run_command("build_ext")
    if logic.sources_digest(root) != digest:
        print("a source changed while it was compiled: run `make compiled` again", file=sys.stderr)
        return 1
    stamp.write_text(logic.stamp_text(digest, [path.as_posix() for path in modules]))
    print(
        f"compiled {len(modules)} agents.logic modules into {build} "
        f"in {time.monotonic() - started:.0f} s",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
