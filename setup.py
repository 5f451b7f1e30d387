"""Declares the compiled extension; the package metadata lives in pyproject.toml.

`pip install -e ".[dev]"` builds `poselive._decode` from cython_ext/_decode.pyx in place. Without it poselive
still runs on the numpy twins in poselive/codec.py (slower; a warning says so).
"""
import sys

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

optimise = ["/O2"] if sys.platform == "win32" else ["-O3"]

extensions = [
    Extension(
        "poselive._decode",
        ["cython_ext/_decode.pyx"],
        include_dirs=[np.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=optimise,
    ),
]

setup(ext_modules=cythonize(extensions, compiler_directives={"language_level": "3"}))
