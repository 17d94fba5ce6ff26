"""agents.logic runs compiled by mypyc only when the build is there and current (the stamp's
source digest is the sources' one), and as plain Python otherwise or when asked to."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from agents import logic

ROOT = Path(__file__).resolve().parents[2]
SUFFIX = sysconfig.get_config_var("EXT_SUFFIX")
MODULES = ["agents/logic/engine.py", "agents/logic/state.py"]


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A copy of the sources and a build of two modules (empty files) stamped as current."""
    for pattern in logic.DIGEST_SOURCES:
        for path in ROOT.glob(pattern):
            target = tmp_path / path.relative_to(ROOT)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
    build = tmp_path / logic.BUILD_DIR
    for module in MODULES:
        (build / module).parent.mkdir(parents=True, exist_ok=True)
        (build / module).with_suffix(SUFFIX).touch()
    stamp = build / logic.STAMP_NAME
    stamp.write_text(logic.stamp_text(logic.sources_digest(tmp_path), MODULES))
    return tmp_path


def select(root: Path, pure_env: str | None = None) -> tuple[bool, str]:
    stamp = root / logic.BUILD_DIR / logic.STAMP_NAME
    text = stamp.read_text() if stamp.exists() else None
    return logic.select(root, pure_env=pure_env, stamp=text)


def test_a_current_build_runs_compiled(tree: Path) -> None:
    assert select(tree) == (True, f"compiled by mypyc ({logic.BUILD_DIR}, 2 modules)")
    assert select(tree, pure_env="0")[0]
    assert select(tree, pure_env="")[0]


def test_the_environment_variable_runs_pure_python(tree: Path) -> None:
    assert select(tree, pure_env="1") == (False, f"{logic.PURE_ENV}=1 is set")


@pytest.mark.parametrize("changed", ["agents/logic/walk.py", "schemas/records.py"])
def test_a_changed_source_makes_the_build_stale(tree: Path, changed: str) -> None:
    with (tree / changed).open("a") as source:
        source.write("\n")
    compiled, reason = select(tree)
    assert not compiled and reason.startswith("STALE build") and "make compiled" in reason


def test_a_new_source_makes_the_build_stale(tree: Path) -> None:
    (tree / "agents/logic/extra.py").write_text("X = 1\n")
    assert not select(tree)[0]


def test_the_loader_itself_is_not_part_of_the_digest(tree: Path) -> None:
    (tree / "agents/logic/__init__.py").write_text("# changed\n")
    assert select(tree)[0]


def test_no_build_an_incomplete_one_or_a_broken_stamp_runs_pure_python(tree: Path) -> None:
    build = tree / logic.BUILD_DIR
    (build / MODULES[1]).with_suffix(SUFFIX).unlink()
    assert select(tree) == (
        False,
        f"incomplete build in {logic.BUILD_DIR} (no {MODULES[1]}); run `make compiled`",
    )
    (build / logic.STAMP_NAME).write_text("{")
    assert not select(tree)[0]
    (build / logic.STAMP_NAME).unlink()
    assert select(tree) == (
        False,
        f"not built ({logic.BUILD_DIR} has no stamp; run `make compiled`)",
    )


def test_a_build_for_another_python_runs_pure_python(tree: Path) -> None:
    stamp = tree / logic.BUILD_DIR / logic.STAMP_NAME
    stamp.write_text(stamp.read_text().replace(sys.implementation.cache_tag, "cpython-399"))
    compiled, reason = select(tree)
    assert not compiled and reason.startswith("built for another Python")


def _probe(env: dict[str, str]) -> list[str]:
    code = (
        "import agents.logic, agents.logic.engine as e; "
        "print(agents.logic.compiled(), e.__file__.endswith('.py'))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    return [done.stdout.strip(), done.stderr]


def test_the_path_in_use_is_the_one_reported() -> None:
    """Pure Python when asked, with one warning; compiled whenever this checkout has a build
    (one that is not current is an error: it would be silently skipped)."""
    out, err = _probe({logic.PURE_ENV: "1"})
    assert out == "False True"
    assert err.count("agents.logic runs as pure Python: ENGAGEMENT_PURE_PYTHON=1 is set") == 1
    if not (ROOT / logic.BUILD_DIR / logic.STAMP_NAME).exists():
        pytest.skip("agents.logic is not compiled here (make compiled)")
    out, err = _probe({logic.PURE_ENV: ""})
    assert out == "True False", err
    assert err == ""


SPAWNED = """
import multiprocessing

def child():
    import agents.logic, agents.logic.funnels, agents.logic.engine as e
    assert agents.logic.compiled() and not e.__file__.endswith(".py"), e.__file__

if __name__ == "__main__":
    import agents.logic.engine  # the parent loads the compiled core first, as the worker does
    multiprocessing.set_start_method("spawn")
    process = multiprocessing.Process(target=child)
    process.start()
    process.join()
    raise SystemExit(process.exitcode)
"""


def test_a_spawned_process_outside_the_checkout_finds_every_module(tmp_path: Path) -> None:
    """The ingest process is spawned with the parent's sys.path, from the worker's own folder:
    the build must not make ``agents`` a namespace package there (it did: build/compiled on
    sys.path hid agents/logic/funnels.py, which is not compiled, and the ingest process died)."""
    if not (ROOT / logic.BUILD_DIR / logic.STAMP_NAME).exists():
        pytest.skip("agents.logic is not compiled here (make compiled)")
    script = tmp_path / "spawned.py"
    script.write_text(SPAWNED)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", logic.PURE_ENV)}
    done = subprocess.run(
        [sys.executable, str(script)],
        env=env,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode == 0, done.stderr
