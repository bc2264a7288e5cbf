"""Plugins: hook specs, entry-point discovery and the task registry."""

from retune.plugins.hookspecs import hookimpl
from retune.plugins.registry import PluginInfo, Registry, get_registry, set_registry

__all__ = ["hookimpl", "Registry", "PluginInfo", "get_registry", "set_registry"]
