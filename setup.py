"""Build hook: the repository's vendors.toml (the file operators read and edit) goes into the wheel as
gate/data/vendors.toml, so an installed gate finds its registry without the source tree. Everything
else is declared in pyproject.toml."""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


class BuildPyWithRegistry(build_py):
    def run(self) -> None:
        super().run()
        target = Path(self.build_lib) / "gate" / "data" / "vendors.toml"
        target.parent.mkdir(parents=True, exist_ok=True)
        self.copy_file(str(ROOT / "vendors.toml"), str(target))


setup(cmdclass={"build_py": BuildPyWithRegistry})
