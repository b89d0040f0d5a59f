"""What a user installs: pyproject.toml's dependencies and extras, environment.yml agreeing with them, and the
notebooks shipped as package data."""
from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from ecglib.errors import InputError
from ecglib.extras import EXTRAS, missing, require_extra

ROOT = Path(__file__).resolve().parents[1]
CONDA_NAMES = {"torch": "pytorch"}


def _pyproject() -> dict:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _requirement(text: str) -> tuple[str, str]:
    """'torch>=2.1,<3' -> ('torch', '>=2.1,<3'); markers and extras dropped."""
    text = text.split(";")[0].strip()
    name = re.match(r"[A-Za-z0-9_.\-]+", text).group(0)
    return name.lower(), text[len(name):].split("]")[-1].strip()


def test_environment_yml_agrees_with_pyproject():
    project = _pyproject()["project"]
    wanted = [_requirement(r) for r in project["dependencies"] if "python_version" not in r]
    for requirements in project["optional-dependencies"].values():
        wanted += [_requirement(r) for r in requirements if not r.startswith("ecglib")]
    env = (ROOT / "environment.yml").read_text()
    # every package line of the file carries a version bound: "  - name>=x" (python=3.11 is the interpreter)
    listed = dict(_requirement(m) for m in re.findall(r"^\s*- ([A-Za-z0-9_.\-]+[<>!]=?\S*)$", env, flags=re.M))
    for name, bound in wanted:
        conda = CONDA_NAMES.get(name, name)
        assert conda in listed, f"{name} is in pyproject.toml but not in environment.yml"
        assert listed[conda] == bound, f"{name}: {bound} in pyproject.toml, {listed[conda]} in environment.yml"
    assert set(listed) == {CONDA_NAMES.get(n, n) for n, _ in wanted}, "environment.yml lists more than pyproject"


def test_the_extras_checked_at_run_time_are_pyprojects():
    optional = _pyproject()["project"]["optional-dependencies"]
    assert set(EXTRAS) <= set(optional)


def test_a_missing_extra_is_one_line_naming_it(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a))
    assert missing("sweep") == ["ray"]
    with pytest.raises(InputError, match=r"^ecglib sweep needs the 'sweep' extra \(ray not installed\): "
                                         r"pip install 'ecglib\[sweep\]'$"):
        require_extra("sweep", "ecglib sweep")


def test_the_notebooks_are_package_data():
    """setuptools maps ecglib.notebooks to notebooks/, so a built wheel carries every study notebook."""
    tool = _pyproject()["tool"]["setuptools"]
    assert tool["package-dir"]["ecglib.notebooks"] == "notebooks" and "ecglib.notebooks" in tool["packages"]
    from ecglib.experiments.study import NOTEBOOKS

    assert all((ROOT / "notebooks" / n).is_file() for n in NOTEBOOKS)
    packages = {p.relative_to(ROOT).as_posix().replace("/", ".") for p in (ROOT / "ecglib").rglob("__init__.py")}
    assert {p.removesuffix(".__init__.py") for p in packages} == set(tool["packages"]) - {"ecglib.notebooks"}
