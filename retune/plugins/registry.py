"""Plugin discovery and the task registry.

Built-in tasks load through the same ``retune`` entry-point group as third-party ones. Set
``RETUNE_PLUGINS`` to a comma-separated list of entry-point names to load only those. A plugin that fails
to import, raises in a hook or registers a taken name is recorded in :attr:`Registry.errors`; every other
task stays usable.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

import pluggy

from retune.core.errors import PluginError, UnknownTaskError
from retune.core.task import Task
from retune.plugins import hookspecs

ENTRY_POINT_GROUP = "retune"
ENV_VAR = "RETUNE_PLUGINS"


@dataclass
class PluginInfo:
    name: str
    distribution: str | None = None
    version: str | None = None
    tasks: list[str] = field(default_factory=list)
    hooks: list[str] = field(default_factory=list)
    error: str | None = None


class Registry:
    """Tasks by name, with the plugin each came from."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(ENTRY_POINT_GROUP)
        self.pm.add_hookspecs(hookspecs)
        self.tasks: dict[str, Task] = {}
        self.task_plugin: dict[str, str] = {}
        self.plugins: dict[str, PluginInfo] = {}

    # ---- loading --------------------------------------------------------------------------------
    def load_entry_points(self, only: list[str] | None = None) -> None:
        if only is None and os.environ.get(ENV_VAR):
            only = [n.strip() for n in os.environ[ENV_VAR].split(",") if n.strip()]
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            if ep.name in self.plugins or (only is not None and ep.name not in only):
                continue
            dist = getattr(ep, "dist", None)
            info = PluginInfo(ep.name, dist.metadata["Name"] if dist else None, dist.version if dist else None)
            try:
                module = ep.load()
            except Exception as exc:  # a broken plugin must not take the others down
                info.error = f"failed to import {ep.value!r}: {type(exc).__name__}: {exc}"
                self.plugins[ep.name] = info
                continue
            self.add_plugin(module, ep.name, info)

    def add_plugin(self, plugin: Any, name: str, info: PluginInfo | None = None) -> PluginInfo:
        """Register a plugin object (a module or any object with hook implementations) and its tasks."""
        info = info or PluginInfo(name)
        self.plugins[name] = info
        try:
            self.pm.register(plugin, name=name)
        except Exception as exc:
            info.error = f"{type(exc).__name__}: {exc}"
            return info
        info.hooks = sorted(impl.name for impl in self.pm.get_hookcallers(plugin) or [])
        for impl in self.pm.hook.register_tasks.get_hookimpls():
            if impl.plugin is not plugin:
                continue
            kwargs = {"register": lambda task, _n=name: self._register_task(task, _n)}
            try:
                impl.function(**{k: v for k, v in kwargs.items() if k in impl.argnames})
            except Exception as exc:
                info.error = f"register_tasks failed: {type(exc).__name__}: {exc}"
        return info

    def _register_task(self, task: Task, plugin_name: str) -> None:
        info = self.plugins[plugin_name]
        if not isinstance(task, Task):
            msg = f"registered {task!r}, which is not a retune Task instance"
            info.error = msg if info.error is None else f"{info.error}; {msg}"
            return
        owner = self.task_plugin.get(task.name)
        if owner is not None:
            msg = f"task name {task.name!r} is already registered by plugin {owner!r}"
            info.error = msg if info.error is None else f"{info.error}; {msg}"
            return
        self.tasks[task.name] = task
        self.task_plugin[task.name] = plugin_name
        info.tasks.append(task.name)

    # ---- lookup ---------------------------------------------------------------------------------
    def get(self, name: str) -> Task:
        try:
            return self.tasks[name]
        except KeyError:
            known = ", ".join(sorted(self.tasks)) or "none"
            hint = ""
            broken = [p for p in self.plugins.values() if p.error]
            if broken:
                hint = "; broken plugins: " + ", ".join(f"{p.name} ({p.error})" for p in broken)
            raise UnknownTaskError(f"unknown task {name!r} (known: {known}){hint}") from None

    def names(self) -> list[str]:
        return sorted(self.tasks)

    @property
    def errors(self) -> dict[str, str]:
        return {p.name: p.error for p in self.plugins.values() if p.error}

    def check_callees(self) -> None:
        for task in self.tasks.values():
            for callee in task.callees:
                if callee not in self.tasks:
                    raise PluginError(f"task {task.name!r} calls task {callee!r}, which is not registered")


_REGISTRY: Registry | None = None


def get_registry(reload: bool = False) -> Registry:
    """The process-wide registry, loaded from entry points on first use."""
    global _REGISTRY
    if _REGISTRY is None or reload:
        _REGISTRY = Registry()
        _REGISTRY.load_entry_points()
    return _REGISTRY


def set_registry(registry: Registry | None) -> None:
    """Install a registry as the process-wide one (tests use this)."""
    global _REGISTRY
    _REGISTRY = registry
