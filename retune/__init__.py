"""retune: teach language models to solve compositional problems by calling themselves."""

from retune.core.task import Answer, Call, Task
from retune.plugins.hookspecs import hookimpl

__version__ = "0.1.0"
__all__ = ["Answer", "Call", "Task", "hookimpl", "__version__"]
