"""The paths a command is given, checked before any model loads (which takes seconds): inputs exist, and
outputs can be written without replacing an input or each other. Each problem is one sentence (InputError).

An output file that already exists is replaced when the command finishes (outputs are written to a temporary
name and renamed); an output that would replace one of the inputs, or another output of the same command,
is refused."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from poselive.errors import InputError


def _writable_folder(folder: Path, label: str) -> None:
    """The nearest existing folder at or above `folder` must take a new file (tried for real: permission bits
    do not tell for root, read-only mounts or /proc)."""
    probe = folder
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        raise InputError(f"cannot write {label}: {probe} is a file, not a folder")
    try:
        with tempfile.TemporaryFile(dir=probe, prefix=".poselive-check-"):
            pass
    except OSError as e:
        raise InputError(f"cannot write {label}: nothing can be written in {probe} ({e.strerror or e})") from None


def check_output_file(path: str | os.PathLike, flag: str) -> Path:
    """A file the command will write (`flag` names its option in messages): not a folder, in a folder that
    exists or can be made, and where a file can be written."""
    path = Path(path)
    label = f"{flag} {path}"
    if path.is_dir():
        raise InputError(f"cannot write {label}: it is a folder; give a file name")
    _writable_folder(path.parent, label)
    return path


def check_output_folder(path: str | os.PathLike, flag: str) -> Path:
    """A folder the command will write files into: not a file, and writable (made if missing)."""
    path = Path(path)
    label = f"{flag} {path}"
    if path.exists() and not path.is_dir():
        raise InputError(f"cannot write into {label}: it is a file, not a folder")
    _writable_folder(path, label)
    return path


def check_input(path: str | os.PathLike) -> Path:
    """A file or folder the command will read."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"cannot find {path}: no such file or folder")
    return path


def _same(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and os.path.samefile(a, b))
    except OSError:
        return False


def check_paths(inputs=(), files: dict[str, str | os.PathLike | None] | None = None,
                folders: dict[str, str | os.PathLike | None] | None = None) -> None:
    """Everything a command was given, before it loads a model: `inputs` (paths) must exist; `files` and
    `folders` map an option (e.g. "--json") to the path it names (None: not given) and must be writable;
    no output file may be one of the inputs or another output."""
    ins = [check_input(p) for p in inputs]
    outs = [(flag, check_output_file(p, flag)) for flag, p in (files or {}).items() if p is not None]
    for flag, p in (folders or {}).items():
        if p is not None:
            check_output_folder(p, flag)
    for i, (flag, out) in enumerate(outs):
        for src in ins:
            if _same(out, src):
                raise InputError(f"{flag} {out} is also an input; writing it would replace the input")
        for other_flag, other in outs[:i]:
            if _same(out, other):
                raise InputError(f"{other_flag} and {flag} both name {out}; give each its own file")
