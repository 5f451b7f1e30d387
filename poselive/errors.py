"""Errors meant for people: each carries one sentence saying what is wrong and what to do. The CLI prints it
on one line, without a traceback, and exits with status 2."""


class PoseliveError(RuntimeError):
    """Base of every error poselive raises on bad input (files, sources, weights, messages)."""


class WeightsError(PoseliveError):
    """A weights file is missing, unreadable, or does not fit the network it is meant for."""


class SourceError(PoseliveError):
    """A camera, video, folder or stream cannot be opened or has stopped delivering frames."""


class InputError(PoseliveError, ValueError):
    """An argument poselive cannot use: an image, a box, a path, a limit. Also a ValueError, so that API callers
    catch bad arguments the way Python code usually does."""


class InputTypeError(InputError, TypeError):
    """An argument of the wrong type or dtype, e.g. a float image where uint8 is expected."""


# What to tell someone whose install lacks torch (training, export, the torch backends).
INSTALL_TORCH = ("install it with `pip install 'poselive[train]'` (for a CPU-only torch, first `pip install torch "
                 "--index-url https://download.pytorch.org/whl/cpu`)")
