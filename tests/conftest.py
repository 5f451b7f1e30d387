"""Shared fixtures.

`decoder_impl` runs a decoder test twice in one pytest invocation: once on the compiled `poselive._decode`
and once on the numpy twins in poselive/codec.py (the msgpack / frozenlist pattern). `shared_data` is the
folder of real photos and videos that some tests read, or a skip that says where it was looked for.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

# Qt widgets under test need no display; a value set by the caller wins.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(params=["cython", "numpy"])
def decoder_impl(request, monkeypatch) -> str:
    """Which decoder `poselive.codec` dispatches to for this test: "cython" or "numpy".

    The numpy run patches `codec._compiled` to None, which is what codec.py itself does when the extension is
    missing or POSELIVE_PURE_PYTHON=1. The cython run skips when the extension is not importable;
    test_codec.py has the test that fails in that case.
    """
    from poselive import codec

    if request.param == "cython":
        if codec._compiled is None:
            pytest.skip("poselive._decode is not built (or POSELIVE_PURE_PYTHON is set)")
    else:
        monkeypatch.setattr(codec, "_compiled", None)
    return request.param


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared data folder: $POSELIVE_DATA, else ../shared/data beside the project (see its README.md)."""
    path = Path(os.environ.get("POSELIVE_DATA") or ROOT.parent / "shared" / "data")
    if not path.is_dir():
        pytest.skip(f"shared data not found at {path}; set POSELIVE_DATA to the shared/data folder")
    return path


@pytest.fixture(scope="session")
def shipped_body_models() -> Path:
    """The folder holding the shipped body-lite weights (live), the still-photo model and the default person
    detector, or a skip saying they are missing."""
    from poselive.weights import DEFAULT_DETECTOR, STILL_MODEL, models_dir
    folder = models_dir()
    for name in ("body-lite", STILL_MODEL, DEFAULT_DETECTOR):
        if not (folder / f"{name}.pt").exists():
            pytest.skip(f"shipped weights {folder / name}.pt are missing (train and ship them, or set "
                        f"POSELIVE_MODELS)")
    return folder
