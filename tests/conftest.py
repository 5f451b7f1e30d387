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
    # Absolute: tests link to files in it from temporary folders, where a relative link would point nowhere.
    path = Path(os.environ.get("POSELIVE_DATA") or ROOT.parent / "shared" / "data").resolve()
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


@pytest.fixture(scope="session")
def held_out_faces(shared_data) -> list:
    """Every 5th held-out 300-W face (28: 12 AFW, 16 HELEN; face_data.split_of_face, never trained on), as face
    records, or a skip saying why there are none."""
    pytest.importorskip("torch", reason="torch is not installed (the face records are training code)")
    from poselive.train.face_data import face_records, split_of_face
    faces = [r for r in face_records(shared_data) if split_of_face(r) == "val" and r.dataset != "ytf68"][::5]
    if not faces:
        pytest.skip(f"no held-out 300-W faces under {shared_data}/face")
    return faces


@pytest.fixture(scope="session")
def shipped_face_models() -> Path:
    """The folder holding face-lite and face-full's three files (trees, patch network, shape model), or a skip
    saying which is missing."""
    from poselive.weights import models_dir
    folder = models_dir()
    for name in ("face-lite.onnx", "face-full.npz", "face-full-refine.onnx", "face-shape.npz"):
        if not (folder / name).exists():
            pytest.skip(f"shipped weights {folder / name} are missing (train and ship them, or set POSELIVE_MODELS)")
    return folder
