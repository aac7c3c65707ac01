"""Optional C accelerator for BLAKE3 subtree hashing; without a compiler the pure-Python
fallback in aioiroh.blobs._blake3tree is used and the install still succeeds."""

from __future__ import annotations

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


class OptionalBuildExt(build_ext):
    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # no compiler / headers: keep the pure-Python fallback
            print(f"warning: aioiroh C accelerator not built ({exc}); using pure Python")

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
        except Exception as exc:
            print(f"warning: {ext.name} not built ({exc}); using pure Python")


setup(
    ext_modules=[
        Extension(
            "aioiroh.blobs._blake3tree_c",
            ["src/aioiroh/blobs/_blake3tree.c"],
            extra_compile_args=["-O3"],
            optional=True,
        )
    ],
    cmdclass={"build_ext": OptionalBuildExt},
)
