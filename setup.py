"""Build of the compiled kernels of the CSV reader (``essqpv.sources._noyaux``, Cython);
everything else is declared in pyproject.toml.

They are compiled for the processor of the machine that installs the package
(``-march=native``: the scanner's word-at-a-time loops are then vectorised). To build a
package for other machines, set ``ESSQPV_PORTABLE=1``.
"""
import os

from Cython.Build import cythonize
from setuptools import Extension, setup

options = ["-O3", "-fno-strict-aliasing"]
if not os.environ.get("ESSQPV_PORTABLE"):
    options.append("-march=native")

setup(ext_modules=cythonize(
    [Extension("essqpv.sources._noyaux", ["src/essqpv/sources/_noyaux.pyx"],
               extra_compile_args=options)],
    compiler_directives={"language_level": 3}, quiet=True))
