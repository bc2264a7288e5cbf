"""Hook specifications for retune plugins.

A plugin is a module (or object) listed in the ``retune`` entry-point group of a distribution::

    [project.entry-points.retune]
    mytask = "retune_task_mytask"

and implementing any of the hooks below with ``@retune.hookimpl``. As in pytest, an implementation may
accept any subset of a hook's arguments.
"""

import pluggy

hookspec = pluggy.HookspecMarker("retune")
hookimpl = pluggy.HookimplMarker("retune")


@hookspec
def register_tasks(register):
    """Register the plugin's tasks.

    Call ``register(task)`` once per task, with an instance of a :class:`retune.core.task.Task` subclass.
    A plugin may register several tasks. A name already taken by another plugin is refused with an error
    naming both plugins; the plugin's other tasks still load.
    """
