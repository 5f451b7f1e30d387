"""Declares the compiled extension, and what a wheel carries beside the code; the package metadata lives in
pyproject.toml.

`pip install -e ".[dev]"` builds `poselive._decode` and `poselive._trees` from cython_ext/ in place. Without
them poselive still runs on the numpy twins in poselive/codec.py and face_trees.py (slower; a warning says so).

A wheel (`pip install .`, or from an sdist) has no checkout beside it, so it carries the shipped weights and the
demo clip inside the package, in poselive/_shipped/ (poselive.weights.shipped_path finds them there). An
editable install reads them from the checkout.
"""
import shutil
import sys
from pathlib import Path

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
# Shipped weights (.pt for the torch backends, .onnx for everything else, .npz for face-full's trees and shape
# model) and model cards; the training states in models/checkpoints/ stay in the checkout.
SHIPPED = ("models/*.onnx", "models/*.pt", "models/*.npz", "models/README.md", "demos/vtest_short.mp4",
           "demos/PROVENANCE.md")

optimise = ["/O2"] if sys.platform == "win32" else ["-O3"]

extensions = [
    Extension(
        "poselive._decode",
        ["cython_ext/_decode.pyx"],
        include_dirs=[np.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=optimise,
    ),
    Extension(
        "poselive._trees",
        ["cython_ext/_trees.pyx"],
        include_dirs=[np.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=optimise,
    ),
]


class BuildWithShippedFiles(build_py):
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return
        for pattern in SHIPPED:
            for src in sorted(ROOT.glob(pattern)):
                dst = Path(self.build_lib) / "poselive" / "_shipped" / src.relative_to(ROOT)
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dst)


setup(ext_modules=cythonize(extensions, compiler_directives={"language_level": "3"}),
      cmdclass={"build_py": BuildWithShippedFiles})
