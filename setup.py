"""Package discovery lives here because presets/ sits at the top of the repository yet must ship inside the
package (as mirai_cli.presets) so that a non-editable install finds them; the rest is in pyproject.toml."""

from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["mirai_cli", "mirai_cli.*"]) + ["mirai_cli.presets"],
    package_dir={"mirai_cli.presets": "presets"},
)
