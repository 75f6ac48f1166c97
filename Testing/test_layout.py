"""Static checks of the extension layout: CMake lists, the Slicer module file, its .ui, the CLI, ruff."""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MODULE_DIR = REPO / "ALNMPredictor"
LIB_DIR = MODULE_DIR / "ALNMPredictorLib"
MODULE_FILE = MODULE_DIR / "ALNMPredictor.py"
UI_FILE = MODULE_DIR / "Resources" / "UI" / "ALNMPredictor.ui"


def _cmake_listed() -> set[str]:
    text = (MODULE_DIR / "CMakeLists.txt").read_text()
    listed = set()
    for block in re.findall(r"set\(MODULE_PYTHON_(?:SCRIPTS|RESOURCES)(.*?)\)", text, flags=re.S):
        for token in block.split():
            listed.add(token.replace("${MODULE_NAME}", "ALNMPredictor"))
    return listed


def test_every_lib_and_resource_file_is_listed_in_module_cmake() -> None:
    listed = _cmake_listed()
    present = {
        p.relative_to(MODULE_DIR).as_posix()
        for p in list(LIB_DIR.rglob("*.py"))
        + list((MODULE_DIR / "Scripts").glob("*.py"))
        + [q for q in (MODULE_DIR / "Resources").rglob("*") if q.is_file()]
        if "__pycache__" not in p.parts
    }
    assert not present - listed, (
        f"files missing from ALNMPredictor/CMakeLists.txt: {sorted(present - listed)}"
    )
    assert not listed - present - {"ALNMPredictor.py"}, f"listed but absent: {sorted(listed - present)}"
    if MODULE_FILE.exists():
        assert "ALNMPredictor.py" in listed


def test_lib_never_imports_slicer_qt_ctk_vtk() -> None:
    offenders = []
    for path in LIB_DIR.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                if name.split(".")[0] in {"slicer", "qt", "ctk", "vtk", "PythonQt"}:
                    offenders.append(f"{path.relative_to(REPO)}: {name}")
    assert not offenders, offenders


def test_no_helper_python_files_beside_the_module_file() -> None:
    extra = [p.name for p in MODULE_DIR.glob("*.py") if p.name != "ALNMPredictor.py"]
    assert not extra, f"Slicer would load these as modules: {extra}"


def test_top_level_cmake_has_extension_metadata() -> None:
    text = (REPO / "CMakeLists.txt").read_text()
    for key in (
        "EXTENSION_HOMEPAGE",
        "EXTENSION_CATEGORY",
        "EXTENSION_CONTRIBUTORS",
        "EXTENSION_DESCRIPTION",
        "EXTENSION_ICONURL",
        "EXTENSION_SCREENSHOTURLS",
        "EXTENSION_DEPENDS",
    ):
        assert re.search(rf'set\({key} "[^"]+"\)', text), key
    assert "PyTorch" in re.search(r'set\(EXTENSION_DEPENDS "([^"]+)"\)', text).group(1)
    assert "add_subdirectory(ALNMPredictor)" in text
    module_cmake = (MODULE_DIR / "CMakeLists.txt").read_text()
    assert "slicerMacroBuildScriptedModule" in module_cmake and "WITH_GENERIC_TESTS" in module_cmake
    assert "slicer_add_python_unittest(SCRIPT ${MODULE_NAME}.py)" in module_cmake


def test_module_file_compiles_and_ui_names_exist() -> None:
    source = MODULE_FILE.read_text()
    compile(source, str(MODULE_FILE), "exec")
    tree = ET.parse(UI_FILE)  # valid XML
    widget_names = {w.get("name") for w in tree.iter("widget")}
    used = set(re.findall(r"self\.ui\.(\w+)", source))
    assert used, "the module uses no widgets of its .ui"
    assert not used - widget_names, f"self.ui names missing from the .ui: {sorted(used - widget_names)}"


def test_ui_parameter_names_match_parameter_node_fields() -> None:
    source = MODULE_FILE.read_text()
    tree = ET.parse(UI_FILE)
    bound = set()
    for prop in tree.iter("property"):
        if prop.get("name") == "SlicerParameterName":
            bound.add(prop.findtext("string"))
    fields: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ClassDef) and any(
            (isinstance(d, ast.Name) and d.id == "parameterNodeWrapper") for d in node.decorator_list
        ):
            fields |= {
                s.target.id
                for s in node.body
                if isinstance(s, ast.AnnAssign) and isinstance(s.target, ast.Name)
            }
    assert fields, "no @parameterNodeWrapper class found"
    assert not bound - fields, f"SlicerParameterName without a parameter-node field: {sorted(bound - fields)}"


def test_every_cli_command_resolves() -> None:
    from ALNMPredictorLib import cli

    for name in cli.COMMANDS:
        module = cli._command_module(name)
        assert callable(getattr(module, f"configure_{name}")) and callable(getattr(module, f"run_{name}"))
        parser = cli.build_parser(name)
        assert parser.prog == "alnm"


def test_cli_help_and_unknown_command() -> None:
    out = subprocess.run([sys.executable, "-m", "ALNMPredictorLib", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "validate" in out.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "ALNMPredictorLib", "frobnicate"], capture_output=True, text=True
    )
    assert bad.returncode == 2 and "invalid choice" in bad.stderr


@pytest.mark.parametrize("command", [["check"], ["format", "--check"]], ids=["lint", "format"])
def test_ruff_clean(command: list[str]) -> None:
    ruff = shutil.which("ruff") or str(Path(sys.executable).parent / "ruff")
    if not Path(ruff).exists():
        pytest.skip("ruff is not installed (it is in the [test] extra)")
    result = subprocess.run(
        [ruff, *command, "--no-cache", str(REPO)], capture_output=True, text=True, cwd=REPO
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _cmake_var(name: str) -> str:
    return re.search(rf'set\({name} "([^"]*)"\)', (REPO / "CMakeLists.txt").read_text()).group(1)


def test_extension_metadata_is_ready_for_the_extensions_index() -> None:
    """The catalog entry follows the index's schema (v1.0.1) and the checks of its check_description_files.py."""
    entry_path = REPO / "docs" / "ExtensionsIndex" / "ALNMPredictor.json"
    raw = entry_path.read_bytes()
    assert b"\r" not in raw  # "File contains non-LF line endings"
    entry = json.loads(raw)
    allowed = {
        "$schema",
        "category",
        "scm_url",
        "scm_revision",
        "scm_type",
        "build_dependencies",
        "build_subdirectory",
        "enabled",
        "tier",
    }
    assert {"$schema", "category", "scm_url"} <= set(entry) and set(entry) <= allowed
    assert entry["$schema"].endswith("slicer-extension-catalog-entry-schema-v1.0.1.json#")
    assert isinstance(entry["tier"], int) and 1 <= entry["tier"] <= 5
    name = entry_path.stem
    project = re.search(r"project\s*\(\s*([^\s\)]+)", (REPO / "CMakeLists.txt").read_text()).group(1)
    assert project == name and not name.lower().startswith("slicer")
    url = entry["scm_url"]
    assert url.startswith("https://") and url.rstrip("/").split("/")[-1].removesuffix(".git").startswith(
        "Slicer"
    )
    assert entry["category"] == _cmake_var("EXTENSION_CATEGORY") == "Quantification"
    assert entry["build_dependencies"] == _cmake_var("EXTENSION_DEPENDS").split()
    assert any((REPO / name).is_file() for name in ("LICENSE.txt", "LICENSE"))
    repo_url = _cmake_var("EXTENSION_HOMEPAGE")
    assert url.removesuffix(".git") == repo_url
    raw_prefix = repo_url.replace("https://github.com/", "https://raw.githubusercontent.com/") + "/main/"
    for image in [_cmake_var("EXTENSION_ICONURL"), *_cmake_var("EXTENSION_SCREENSHOTURLS").split()]:
        assert image.startswith(raw_prefix) and image.endswith(".png"), image
        assert (REPO / image.removeprefix(raw_prefix)).is_file(), image
    description = _cmake_var("EXTENSION_DESCRIPTION")
    assert 1 <= len(re.findall(r"[.!?](\s|$)", description)) <= 2, description
    for contributor in _cmake_var("EXTENSION_CONTRIBUTORS").split(", "):
        assert re.fullmatch(r"[^()]+ \([^()]+\)", contributor), contributor  # "Name (Organisation)"


def test_slicer_requirements_match_the_package_dependencies() -> None:
    """Resources/requirements.txt (what a Slicer user's Python gets) lists pyproject's dependencies but PyTorch."""
    import tomllib

    from ALNMPredictorLib import dependencies

    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    pip = {
        dependencies.Requirement.parse(d).text for d in declared if not d.startswith(("torch", "torchvision"))
    }
    slicer = {r.text for r in dependencies.read_requirements()}
    assert slicer == pip
    assert {dependencies.Requirement.parse(t).name for t in dependencies.PYTORCH} == {"torch", "torchvision"}


def test_lowest_versions_file_pins_every_declared_lower_bound() -> None:
    """Testing/lowest_versions.txt (the CI's lowest-versions job) pins each dependency at its declared lower
    bound: the same version, or the first release after it where the bound names none (pyradiomics-bhklab 3.1)."""
    text = (REPO / "pyproject.toml").read_text()
    deps = re.findall(r'"([^"]+)"', re.search(r"(?s)\ndependencies = \[(.*?)\]", text).group(1))
    test_deps = re.findall(r'"([^"]+)"', re.search(r"(?s)\ntest = \[(.*?)\n\]", text).group(1))
    declared = {}
    for spec in deps + [d for d in test_deps if d.split(">=")[0] in ("pytest", "pypdf")]:
        name, bound = re.fullmatch(r"([A-Za-z0-9_.\-]+)>=([0-9.]+)", spec).groups()
        declared[name.lower()] = bound
    lines = (REPO / "Testing" / "lowest_versions.txt").read_text().splitlines()
    pinned = dict(line.lower().split("==") for line in lines if line and not line.startswith("#"))
    assert pinned.keys() == declared.keys()
    for name, bound in declared.items():
        release = [int(p) for p in pinned[name].split(".")]
        wanted = [int(p) for p in bound.split(".")]
        assert release[: len(wanted)] == wanted, (name, bound, pinned[name])
