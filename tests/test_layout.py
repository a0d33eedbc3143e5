"""The run layout is the one place that spells an artifact path (issue 13, acceptance).

Every string literal in the package (f-string parts included, docstrings and other bare string
statements left out) is checked for the marks of a run artifact: a run folder as a path part
(``tables``, ``figures``, ``eval``, ``models``), a file the stages write by name, or a file name
with an artifact's suffix. A bare folder name used as a data key (``table["models"]``,
``{"models": ...}``, ``config.get("eval")``) is a column or config section, not a path. Only
``layout.py`` may hold artifact paths; what else legitimately looks like one is listed below with the reason.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import xaiquest
from xaiquest.layout import MODEL_RELATIVE, RELATIVE, RunLayout

PACKAGE = Path(xaiquest.__file__).parent
EXEMPT = {
    "layout.py": "the layout itself",
    "data": "loaders of the user's datasets (CIFAR-10 archives, image folders, CIFAR-10-C .npy files): not run artifacts",
    "explain/single.py": "`xaiquest explain-image` writes into a folder the user names, not into a run",
}
"""Files (or packages) of ``src/xaiquest`` the scan skips, with the reason."""
RUN_FOLDERS = {"tables", "figures", "eval", "models"}
RUN_FILES = re.compile(r"\b(manifest|metrics|calibration)\.json\b|\b(model|logits|maps)\.pt\b")
ARTIFACT_NAME = re.compile(r"^[\w*./-]*\.(csv|png|pt|json|md)$")
ALLOWED = {
    ("cli.py", "models"): "the `xaiquest list models` command's name",
    ("config.py", "models"): "the config field `models` its validator is declared for",
    ("validation.py", "models"): "the config field `models` a validation error names",
}
"""(file, literal) pairs that look like an artifact path and are not one, with the reason. Keep it short:
a new entry must say why the literal is not a path into a run directory."""


def _literals(tree: ast.AST) -> list[ast.Constant]:
    """String constants, f-string parts included, except bare string statements (docstrings, attribute
    notes) and bare run-folder names used as data keys."""
    skipped = {id(node.value) for node in ast.walk(tree)
               if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)}
    skipped |= {id(key) for key in _data_keys(tree) if isinstance(key, ast.Constant) and key.value in RUN_FOLDERS}
    return [node for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skipped]


def _data_keys(tree: ast.AST) -> list[ast.AST]:
    """Expressions used as keys: subscripts, dict keys, the first argument of ``.get``/``.pop``, ``in`` tests."""
    keys: list[ast.AST] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript):
            keys.append(node.slice)
        elif isinstance(node, ast.Dict):
            keys += [key for key in node.keys if key is not None]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in {"get", "pop"}:
            keys += node.args[:1]
        elif isinstance(node, ast.Compare) and any(isinstance(op, (ast.In, ast.NotIn)) for op in node.ops):
            keys.append(node.left)
    return keys


def artifact_like(literal: str) -> bool:
    """Whether ``literal`` spells (part of) a run artifact's path."""
    return (literal in RUN_FOLDERS or ("/" in literal and bool(RUN_FOLDERS & set(literal.split("/"))))
            or bool(RUN_FILES.search(literal)) or bool(ARTIFACT_NAME.match(literal)))


def _exempt(rel: str) -> bool:
    return any(rel == name or rel.startswith(f"{name}/") for name in EXEMPT)


def offenders() -> list[str]:
    """``file:line: 'literal'`` for every artifact-like literal outside the layout and the allow-list."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if _exempt(rel):
            continue
        for node in _literals(ast.parse(path.read_text(encoding="utf-8"))):
            if artifact_like(node.value) and (rel, node.value) not in ALLOWED:
                found.append(f"{rel}:{node.lineno}: {node.value!r}")
    return found


def test_the_layout_is_the_only_place_that_spells_an_artifact_path() -> None:
    assert offenders() == []


def test_the_scan_recognises_the_ways_an_artifact_path_is_spelled() -> None:
    """So the test above cannot pass by recognising nothing."""
    spelled = ["tables", "models/", "tables/comparison.csv", "eval/metrics.json", "manifest.json", "model.pt",
               ".png", "stress_*.csv", "reliability_bins.csv"]
    assert [literal for literal in spelled if not artifact_like(literal)] == []
    prose = ["accuracy", "the models took 3 s", "calibration", "ECE/mCE", "runs/quick", "models x variants"]
    assert [literal for literal in prose if artifact_like(literal)] == []
    tree = ast.parse('"""doc: tables/x.csv"""\nA = f"models/{run}/train.json"\nB = root / "eval"\n'
                     'C = table["models"] + config.get("eval", {})["x"] + {"tables": 1}["tables"]\n')
    assert sorted(node.value for node in _literals(tree) if artifact_like(node.value)) == ["/train.json", "eval", "models/"]


def test_the_allow_list_holds_only_literals_that_still_exist() -> None:
    """A stale allow-list entry would silently excuse a future offender."""
    present = {(path.relative_to(PACKAGE).as_posix(), node.value) for path in PACKAGE.rglob("*.py")
               for node in _literals(ast.parse(path.read_text(encoding="utf-8")))}
    assert sorted(set(ALLOWED) - present) == []


def test_relative_names_are_the_paths_a_run_directory_holds(tmp_path: Path) -> None:
    """The report cites run-relative names; they must be the real files' paths relative to the run."""
    layout = RunLayout(tmp_path)
    assert layout.relative(layout.tables.comparison) == RELATIVE.tables.comparison.as_posix() == "tables/comparison.csv"
    assert layout.relative(layout.model("m").eval.metrics) == (RELATIVE.model("m").folder / MODEL_RELATIVE.eval.metrics).as_posix()
