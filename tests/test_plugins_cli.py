"""``retune plugins``, ``retune new-task`` and plugin packages seen through fake installs.

Installing with pip inside tests is slow and needs a network or a wheel cache, so a package is "installed"
by putting its source on ``PYTHONPATH`` next to a ``*.dist-info`` directory holding its ``METADATA`` and
``entry_points.txt``, which is all ``importlib.metadata`` reads.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from retune.cli import cli, main
from retune.plugins.registry import ENV_VAR

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "retune-task-reverse"
BUILTIN = {"addition", "dp", "parity", "multiplication", "mergesort", "gcd"}


def fake_install(site: Path, dist: str, version: str, entry_points: dict[str, str]) -> None:
    """Make ``dist`` visible to ``importlib.metadata`` from ``site`` with ``retune`` entry points."""
    info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    lines = "".join(f"{name} = {module}\n" for name, module in entry_points.items())
    (info / "entry_points.txt").write_text(f"[retune]\n{lines}")


def retune(*args: str, paths: list[Path] = (), env: dict | None = None, cwd: Path | None = None):
    full_env = {k: v for k, v in os.environ.items() if k != ENV_VAR}
    full_env["PYTHONPATH"] = os.pathsep.join([*map(str, paths), full_env.get("PYTHONPATH", "")])
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "retune.cli", *args], capture_output=True, text=True,
                          env=full_env, cwd=cwd, timeout=120)


def run_in_process(*args: str):
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


# ---- retune plugins ---------------------------------------------------------------------------------
def test_plugins_lists_every_builtin_with_its_distribution_tasks_and_hooks():
    rows = {row["name"]: row for row in json.loads(run_in_process("plugins", "--json"))}
    assert BUILTIN <= set(rows)
    for name in BUILTIN:
        row = rows[name]
        assert row["distribution"] == "retune" and row["version"]
        assert row["tasks"] == [name] and row["hooks"] == ["register_tasks"] and row["error"] is None


def test_plugins_table():
    lines = run_in_process("plugins").splitlines()
    assert lines[0].split() == ["PLUGIN", "DISTRIBUTION", "VERSION", "TASKS", "HOOKS", "STATUS"]
    gcd = next(line for line in lines if line.startswith("gcd "))
    assert gcd.split() == ["gcd", "retune", gcd.split()[2], "gcd", "register_tasks", "ok"]


def test_a_broken_plugin_is_listed_with_its_error_and_the_others_still_work(tmp_path):
    (tmp_path / "broken_plugin_mod.py").write_text("raise RuntimeError('boom at import')\n")
    fake_install(tmp_path, "broken-plugin", "0.1", {"broken": "broken_plugin_mod"})

    out = retune("plugins", "--json", paths=[tmp_path])
    assert out.returncode == 0, out.stderr
    rows = {row["name"]: row for row in json.loads(out.stdout)}
    broken = rows["broken"]
    assert broken["distribution"] == "broken-plugin" and broken["version"] == "0.1" and broken["tasks"] == []
    assert "RuntimeError: boom at import" in broken["error"]
    assert all(rows[name]["error"] is None for name in BUILTIN)

    table = retune("plugins", paths=[tmp_path]).stdout
    assert "BROKEN: failed to import 'broken_plugin_mod': RuntimeError: boom at import" in table

    tasks = retune("tasks", paths=[tmp_path])
    assert tasks.returncode == 0 and "multiplication" in tasks.stdout
    assert "plugin 'broken' is broken" in tasks.stderr
    solved = retune("solve", "--task", "multiplication", "--oracle", "12 * 34", paths=[tmp_path])
    assert (solved.returncode, solved.stdout.strip()) == (0, "408")


def test_retune_plugins_env_var_limits_the_listing():
    out = retune("plugins", "--json", env={ENV_VAR: "gcd,parity"})
    assert [row["name"] for row in json.loads(out.stdout)] == ["gcd", "parity"]
    assert ENV_VAR in out.stderr


# ---- retune new-task --------------------------------------------------------------------------------
def test_new_task_scaffolds_a_package_whose_tests_pass_and_that_registers_its_task(tmp_path):
    out = run_in_process("new-task", "listsum", "--dir", str(tmp_path))
    root = tmp_path / "retune-task-listsum"
    files = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    assert files == ["README.md", "pyproject.toml", "src/retune_task_listsum/__init__.py", "tests/test_listsum.py"]
    assert f"created {root / 'pyproject.toml'}" in out
    pyproject = (root / "pyproject.toml").read_text()
    assert 'name = "retune-task-listsum"' in pyproject
    assert '[project.entry-points.retune]\nlistsum = "retune_task_listsum"' in pyproject

    site = tmp_path / "site"
    fake_install(site, "retune-task-listsum", "0.1.0", {"listsum": "retune_task_listsum"})
    paths = [root / "src", site]
    rows = {row["name"]: row for row in json.loads(retune("plugins", "--json", paths=paths).stdout)}
    assert rows["listsum"]["distribution"] == "retune-task-listsum" and rows["listsum"]["tasks"] == ["listsum"]
    solved = retune("solve", "--task", "listsum", "--oracle", "What is the sum of [3, 1, 4, 9]?", paths=paths)
    assert (solved.returncode, solved.stdout.strip()) == (0, "17"), solved.stderr

    tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=root,
                           capture_output=True, text=True, timeout=300,
                           env={**os.environ, "PYTHONPATH": os.pathsep.join(map(str, paths))})
    assert tests.returncode == 0, tests.stdout[-3000:]
    assert "6 passed" in tests.stdout  # the entry-point test ran too: nothing skipped


@pytest.mark.parametrize("name, message", [
    ("1abc", "bad task name '1abc'"),
    ("my-task", "bad task name 'my-task'"),
    ("MyTask", "bad task name 'MyTask'"),
    ("class", "bad task name 'class'"),
    ("", "bad task name ''"),
    ("addition", "a task named 'addition' is already registered"),
])
def test_new_task_refuses_bad_names_with_one_line(tmp_path, capsys, name, message):
    with pytest.raises(SystemExit) as exit_:
        main(["new-task", name, "--dir", str(tmp_path)])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
    assert not any(tmp_path.iterdir())


def test_new_task_refuses_an_existing_directory(tmp_path, capsys):
    (tmp_path / "retune-task-listsum").mkdir()
    with pytest.raises(SystemExit) as exit_:
        main(["new-task", "listsum", "--dir", str(tmp_path)])
    assert exit_.value.code == 2
    assert "already exists" in capsys.readouterr().err
    assert not any((tmp_path / "retune-task-listsum").iterdir())


# ---- the example package --------------------------------------------------------------------------
def test_example_package_registers_reverse_and_its_tests_pass(tmp_path):
    fake_install(tmp_path, "retune-task-reverse", "0.1.0", {"reverse": "retune_task_reverse"})
    paths = [EXAMPLE / "src", tmp_path]
    rows = {row["name"]: row for row in json.loads(retune("plugins", "--json", paths=paths).stdout)}
    assert rows["reverse"]["distribution"] == "retune-task-reverse" and rows["reverse"]["tasks"] == ["reverse"]
    solved = retune("solve", "--task", "reverse", "--oracle", "Reverse stone", paths=paths)
    assert solved.stdout.strip() == "enots", solved.stderr
    tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=EXAMPLE,
                           capture_output=True, text=True, timeout=300,
                           env={**os.environ, "PYTHONPATH": os.pathsep.join(map(str, paths))})
    assert tests.returncode == 0, tests.stdout[-3000:]
    assert "skipped" not in tests.stdout
