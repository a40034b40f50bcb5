"""The relay's compiled datagram path; everything else is configured in pyproject.toml."""

from setuptools import Extension, setup

setup(ext_modules=[Extension("smartpractice.rtc._datagrams", ["smartpractice/rtc/_datagrams.c"],
                             extra_compile_args=["-O2"])])
