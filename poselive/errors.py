"""Errors meant for people: each carries one sentence saying what is wrong and what to do. The CLI prints it
on one line, without a traceback."""


class PoseliveError(RuntimeError):
    """Base of every error poselive raises on bad input (files, sources, weights, messages)."""


class WeightsError(PoseliveError):
    """A weights file is missing, unreadable, or does not fit the network it is meant for."""


class SourceError(PoseliveError):
    """A camera, video, folder or stream cannot be opened or has stopped delivering frames."""
