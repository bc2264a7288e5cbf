"""Plugin discovery: entry points, RETUNE_PLUGINS, broken plugins and name clashes."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from retune.plugins import Registry, hookimpl
from retune.tasks.parity import ParityTask


def make_dist(root, dist, module, source, entry_name=None):
    """A minimal installed distribution on ``root``: a dist-info with an entry point and a module."""
    info = root / f"{dist}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[retune]\n{entry_name or dist} = {module}\n")
    (root / f"{module}.py").write_text(textwrap.dedent(source))


def test_builtin_tasks_load_through_entry_points():
    registry = Registry()
    registry.load_entry_points()
    assert {"addition", "dp", "parity"} <= set(registry.names())
    info = registry.plugins["parity"]
    assert info.distribution == "retune" and "register_tasks" in info.hooks and info.tasks == ["parity"]


def test_env_var_restricts_loaded_plugins(monkeypatch):
    monkeypatch.setenv("RETUNE_PLUGINS", "parity, dp")
    registry = Registry()
    registry.load_entry_points()
    assert set(registry.names()) == {"parity", "dp"}


def test_duplicate_task_name_is_refused_with_both_plugins_named():
    registry = Registry()
    registry.load_entry_points(only=["parity"])

    class Clash:
        @hookimpl
        def register_tasks(self, register):
            register(ParityTask())

    info = registry.add_plugin(Clash(), "clash")
    assert "already registered by plugin 'parity'" in info.error
    assert registry.task_plugin["parity"] == "parity"


def test_plugin_with_several_tasks_and_a_subset_of_arguments():
    class Renamed(ParityTask):
        name = "parity2"

    class Several:
        @hookimpl
        def register_tasks(self, register):
            register(Renamed())
            register("not a task")

    registry = Registry()
    info = registry.add_plugin(Several(), "several")
    assert registry.names() == ["parity2"]
    assert "not a retune Task" in info.error


def test_broken_plugins_are_reported_while_others_work(tmp_path):
    make_dist(tmp_path, "broken_import", "broken_import_mod", "raise RuntimeError('boom at import')\n")
    make_dist(
        tmp_path,
        "broken_hook",
        "broken_hook_mod",
        """
        from retune.plugins import hookimpl

        @hookimpl
        def register_tasks(register):
            raise ValueError("boom in hook")
        """,
    )
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    code = (
        "from retune.plugins import get_registry; r = get_registry(); "
        "print(sorted(r.errors.items())); print(r.names())"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert "boom at import" in out and "broken_import" in out
    assert "boom in hook" in out and "broken_hook" in out
    assert "'parity'" in out and "'addition'" in out
    result = subprocess.run(
        [sys.executable, "-m", "retune.cli", "solve", "--task", "broken_hook", "--oracle", "x"],
        env=env, capture_output=True, text=True,
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "broken plugins" in result.stderr and "Traceback" not in result.stderr
    result = subprocess.run(
        [sys.executable, "-m", "retune.cli", "solve", "--task", "parity", "--oracle", "[1, 1, 1]"],
        env=env, capture_output=True, text=True,
    )
    assert result.returncode == 0 and result.stdout.strip() == "1"


def test_unknown_task_lists_known_ones():
    registry = Registry()
    registry.load_entry_points(only=["parity"])
    with pytest.raises(Exception, match="unknown task 'nope' .known: parity"):
        registry.get("nope")
