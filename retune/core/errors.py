"""Exceptions with one-line messages that the CLI prints without a traceback."""


class RetuneError(Exception):
    """Base class: the message is shown to the user as a one-line error."""


class UnknownTaskError(RetuneError):
    pass


class ProblemParseError(RetuneError, ValueError):
    """A problem or answer text that the task cannot parse."""


class ProtocolError(RetuneError):
    """A task broke the recursive-task protocol (e.g. a call that does not shrink the problem)."""


class PluginError(RetuneError):
    pass
