"""The pure core, run compiled by mypyc when it is built and current, else as plain Python.

``make compiled`` (part of ``make venv``) builds these modules with mypyc into ``build/compiled``
(see :mod:`agents.build_compiled`) and stamps the build with a digest of the sources it compiled.
On import, this package puts that directory first on its ``__path__`` only when the stamp's
digest is the current sources' one, so the compiled modules take precedence over the ``.py``
files; in every other case it runs the ``.py`` files and logs one warning saying why:

* ``ENGAGEMENT_PURE_PYTHON=1`` is set (to run, test or profile the plain Python path);
* nothing is built (or the build is incomplete, or for another Python);
* the build is stale: a source changed since it was compiled. A stale module would run old
  logic, so it is never loaded; ``make compiled`` rebuilds it.

:func:`compiled` tells which path runs (the worker logs it and exports it on
``engagement_build_info``). Both paths give the same results bit for bit; the tests run on both.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import sys
import sysconfig
from collections.abc import Iterable
from pathlib import Path

PACKAGE_DIR = "agents/logic"
BUILD_DIR = "build/compiled"
STAMP_NAME = "agents-logic.stamp.json"
PURE_ENV = "ENGAGEMENT_PURE_PYTHON"
# What compiled code depends on: the modules themselves, and the contracts they import (mypyc
# may inline their constants). Any change to these makes a build stale.
DIGEST_SOURCES = ("agents/logic/*.py", "schemas/*.py")
_LOADER = f"{PACKAGE_DIR}/__init__.py"

_log = logging.getLogger(__name__)


def _abi() -> str:
    return f"{sys.implementation.cache_tag} {sysconfig.get_config_var('EXT_SUFFIX')}"


def sources_digest(root: Path) -> str:
    """A digest of the sources a build compiles from (names and contents), this loader aside."""
    digest = hashlib.sha256()
    for pattern in DIGEST_SOURCES:
        for path in sorted(root.glob(pattern)):
            name = path.relative_to(root).as_posix()
            if name != _LOADER:
                digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def stamp_text(digest: str, modules: Iterable[str]) -> str:
    """The stamp a build writes last: what it compiled, from which sources, for which Python."""
    return json.dumps({"digest": digest, "abi": _abi(), "modules": list(modules)}, indent=1)


def select(
    root: Path, *, pure_env: str | None, stamp: str | None, ext_suffix: str | None = None
) -> tuple[bool, str]:
    """Whether to run the compiled modules of ``root / BUILD_DIR``, and why (or why not)."""
    if pure_env not in (None, "", "0"):
        return False, f"{PURE_ENV}={pure_env} is set"
    if stamp is None:
        return False, f"not built ({BUILD_DIR} has no stamp; run `make compiled`)"
    try:
        built = json.loads(stamp)
        digest, abi, modules = built["digest"], built["abi"], built["modules"]
    except (ValueError, KeyError, TypeError):
        return False, f"unreadable stamp in {BUILD_DIR}; run `make compiled`"
    if abi != _abi():
        return False, f"built for another Python ({abi}, this is {_abi()}); run `make compiled`"
    if digest != sources_digest(root):
        return False, (
            f"STALE build in {BUILD_DIR}: sources changed since it was compiled, so it would run "
            "old logic; run `make compiled`"
        )
    suffix = ext_suffix or sysconfig.get_config_var("EXT_SUFFIX")
    build = root / BUILD_DIR
    missing = [m for m in modules if not (build / m).with_suffix(suffix).exists()]
    if missing:
        return False, f"incomplete build in {BUILD_DIR} (no {missing[0]}); run `make compiled`"
    return True, f"compiled by mypyc ({BUILD_DIR}, {len(modules)} modules)"


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def _load_runtime(build: Path) -> None:
    """Import mypyc's shared runtime (a top-level module the compiled modules import by name)
    from its file, without putting ``build`` on ``sys.path``: there, its ``agents`` folder
    would shadow the real package as a namespace package in a process that imports
    ``agents`` afterwards (the ingest process, which inherits the parent's ``sys.path``)."""
    for path in build.glob(f"*__mypyc{sysconfig.get_config_var('EXT_SUFFIX')}"):
        name = path.name.split(".")[0]
        if name not in sys.modules:
            spec = importlib.util.spec_from_file_location(name, path)
            if spec is None or spec.loader is None:
                raise ImportError(f"cannot load mypyc's runtime {path}")
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            spec.loader.exec_module(module)


_root = Path(__file__).resolve().parents[2]
_compiled, reason = select(
    _root, pure_env=os.environ.get(PURE_ENV), stamp=_read(_root / BUILD_DIR / STAMP_NAME)
)
if _compiled:
    __path__.insert(0, str(_root / BUILD_DIR / PACKAGE_DIR))
    _load_runtime(_root / BUILD_DIR)
else:
    _log.warning("agents.logic runs as pure Python: %s", reason)


def compiled() -> bool:
    """Whether the modules of this package run compiled by mypyc (else as plain Python)."""
    return _compiled
