"""Core: the recursive-task protocol, its text format, traces, training records and the recursive solver."""

from retune.core.errors import ProblemParseError, ProtocolError, RetuneError, UnknownTaskError
from retune.core.task import Answer, Call, Task
from retune.core.trace import Node, Step, build_trace, walk

__all__ = [
    "Answer", "Call", "Task", "Node", "Step", "build_trace", "walk",
    "RetuneError", "UnknownTaskError", "ProblemParseError", "ProtocolError",
]
