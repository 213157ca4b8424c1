"""The domain packages never import each other, except ``wallet -> ledger`` (docs: DESIGN.md).

The check reads every ``.py`` file of our packages with :mod:`ast` (nothing is imported, so a
module that fails to import is still checked) and finds every import of one of our packages:
``import x``, ``from x import y``, relative imports resolved against the file's own package,
and ``importlib.import_module("x")`` / ``__import__("x")`` with a string literal. Imports
under ``if TYPE_CHECKING:`` count too: a type is a dependency.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

OURS = frozenset({"ledger", "wallet", "matchmaking", "realtime", "replays", "leetgaming"})

# package -> the other packages of ours it may import.
ALLOWED: dict[str, frozenset[str]] = {
    "ledger": frozenset(),
    "wallet": frozenset({"ledger"}),
    "matchmaking": frozenset(),
    "realtime": frozenset(),
    "replays": frozenset(),
    "leetgaming": OURS,
}


@dataclass(frozen=True)
class Violation:
    path: str
    line: int
    importer: str
    imported: str

    def __str__(self) -> str:
        allowed = ", ".join(sorted(ALLOWED[self.importer] - {self.importer})) or "nothing of ours"
        return (
            f"{self.path}:{self.line}: {self.importer} may not import {self.imported} "
            f"(it may import: {allowed})"
        )


BEYOND = "<beyond the top-level package>"


def _package_of(relative_path: str) -> list[str]:
    """The package a file's relative imports start from: ``ledger/x/y.py`` -> ``[ledger, x]``.

    For ``ledger/x/__init__.py`` that is ``[ledger, x]`` too: the package the file defines.
    """
    return relative_path.removesuffix(".py").split("/")[:-1]


def _resolve_relative(
    package: list[str], level: int, module: str | None, names: list[str]
) -> list[str]:
    """The top-level packages named by ``from <level dots><module> import <names>``.

    A relative import that stays inside the file's top-level package names that package. One
    that climbs exactly to the top (``from ..wallet import x`` in ``ledger/y.py``) fails at run
    time, but still says what it means to import, and that is checked. One that climbs higher
    is reported as ``BEYOND``.
    """
    climb = level - 1
    if climb < len(package):
        return [package[0]]
    if climb == len(package):
        return [module.split(".")[0]] if module else names
    return [BEYOND]


def _import_module_target(node: ast.Call) -> tuple[str, str | None] | None:
    """``(name, package)`` of an ``import_module("...")`` / ``__import__("...")`` call."""
    func = node.func
    name = None
    if isinstance(func, ast.Name):
        name = func.id
    elif isinstance(func, ast.Attribute):
        name = func.attr
    if name not in ("import_module", "__import__"):
        return None
    if not node.args or not isinstance(node.args[0], ast.Constant):
        return None
    target = node.args[0].value
    if not isinstance(target, str):
        return None
    package = None
    for keyword in node.keywords:
        if keyword.arg == "package" and isinstance(keyword.value, ast.Constant):
            package = keyword.value.value if isinstance(keyword.value.value, str) else None
    if package is None and len(node.args) > 1 and isinstance(node.args[1], ast.Constant):
        second = node.args[1].value
        package = second if isinstance(second, str) and name == "import_module" else None
    return target, package


def imported_packages(source: str, relative_path: str) -> list[tuple[int, str]]:
    """``(line, top-level name)`` of every import in ``source``, relative ones resolved."""
    package = _package_of(relative_path)
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source, filename=relative_path)):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name.split(".")[0]) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                found.append((node.lineno, (node.module or "").split(".")[0]))
                continue
            names = [alias.name for alias in node.names]
            targets = _resolve_relative(package, node.level, node.module, names)
            found.extend((node.lineno, target) for target in targets)
        elif isinstance(node, ast.Call):
            call = _import_module_target(node)
            if call is None:
                continue
            target, anchor = call
            if not target.startswith("."):
                found.append((node.lineno, target.split(".")[0]))
                continue
            level = len(target) - len(target.lstrip("."))
            anchor_parts = anchor.split(".") if anchor else package
            targets = _resolve_relative(anchor_parts, level, target[level:] or None, [])
            found.extend((node.lineno, name) for name in targets)
    return found


def check_source(source: str, relative_path: str) -> list[Violation]:
    """The layering violations of one file, given its path relative to the repository root."""
    importer = relative_path.split("/")[0]
    allowed = ALLOWED[importer] | {importer}
    violations: list[Violation] = []
    for line, name in imported_packages(source, relative_path):
        if (name in OURS or name == BEYOND) and name not in allowed:
            violations.append(Violation(relative_path, line, importer, name))
    return violations


def package_files(root: Path) -> list[Path]:
    files: list[Path] = []
    for package in sorted(ALLOWED):
        files.extend(
            path
            for path in sorted((root / package).rglob("*.py"))
            if "__pycache__" not in path.parts
        )
    return files


def check_tree(root: Path) -> tuple[list[Path], list[Violation]]:
    files = package_files(root)
    violations: list[Violation] = []
    for path in files:
        relative = path.relative_to(root).as_posix()
        violations.extend(check_source(path.read_text(encoding="utf-8"), relative))
    return files, violations


def test_our_packages_respect_the_layering() -> None:
    files, violations = check_tree(ROOT)
    assert ROOT / "leetgaming" / "app.py" in files  # the check looks at the real tree
    assert not violations, "layering violations:\n" + "\n".join(map(str, violations))


def test_every_package_of_the_table_exists() -> None:
    for package in ALLOWED:
        assert (ROOT / package).is_dir(), package


@pytest.mark.parametrize(
    ("path", "source", "imported"),
    [
        ("ledger/store.py", "import wallet", "wallet"),
        ("ledger/store.py", "import os, wallet.accounts as accounts", "wallet"),
        ("ledger/store.py", "from wallet.accounts import Account", "wallet"),
        ("ledger/store.py", "from leetgaming.settings import Settings", "leetgaming"),
        ("ledger/stores/sqlite.py", "from ...wallet import accounts", "wallet"),
        ("ledger/store.py", "from .. import wallet", "wallet"),
        ("ledger/store.py", "from ..matchmaking.rating import rate", "matchmaking"),
        ("ledger/store.py", "import importlib\nimportlib.import_module('wallet.x')", "wallet"),
        (
            "ledger/store.py",
            "from importlib import import_module\nimport_module('realtime')",
            "realtime",
        ),
        ("ledger/store.py", "import_module('..replays', package='ledger')", "replays"),
        ("realtime/hub.py", "__import__('matchmaking.queue')", "matchmaking"),
        ("wallet/fees.py", "from matchmaking.prizes import PrizeTable", "matchmaking"),
        ("wallet/fees.py", "import realtime.hub", "realtime"),
        ("matchmaking/queue.py", "import ledger", "ledger"),
        ("replays/parse.py", "from leetgaming import app", "leetgaming"),
        (
            "matchmaking/bracket.py",
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from realtime.hub import Hub",
            "realtime",
        ),
        ("replays/parse.py", "def f():\n    import wallet\n    return wallet", "wallet"),
        ("ledger/store.py", "from .... import anything", BEYOND),
    ],
)
def test_the_check_catches_a_forbidden_import(path: str, source: str, imported: str) -> None:
    violations = check_source(source, path)
    assert [v.imported for v in violations] == [imported]
    assert violations[0].importer == path.split("/")[0]
    assert str(violations[0]).startswith(f"{path}:")
    assert f"may not import {imported}" in str(violations[0])


@pytest.mark.parametrize(
    ("path", "source"),
    [
        ("wallet/fees.py", "from ledger import stores\nimport ledger.transfer"),
        ("wallet/deep/fees.py", "from ...ledger import stores"),
        ("leetgaming/app.py", "import ledger, wallet, matchmaking, realtime, replays"),
        ("ledger/store.py", "import asyncio, json\nfrom dataclasses import dataclass"),
        ("ledger/stores/sqlite.py", "from ..transfer import Transfer\nfrom . import base"),
        ("ledger/__init__.py", "from .store import Store\nfrom ledger.asset import Asset"),
        ("ledger/store.py", "import importlib\nimportlib.import_module('ledger.asset')"),
        ("ledger/store.py", "import_module('..asset', package='ledger.stores')"),
        ("matchmaking/rating.py", "import_module('.bracket', 'matchmaking')"),
        ("realtime/hub.py", "x = 'import wallet'  # a string, not an import"),
    ],
)
def test_the_check_allows_what_the_table_allows(path: str, source: str) -> None:
    assert check_source(source, path) == []


def test_the_check_finds_a_violation_in_a_tree(tmp_path: Path) -> None:
    for package in ALLOWED:
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / "leetgaming" / "app.py").write_text("import wallet\n")
    (tmp_path / "realtime" / "channels").mkdir()
    (tmp_path / "realtime" / "channels" / "lobby.py").write_text(
        '"""Lobby."""\n\nfrom ...wallet import balances\n'
    )
    files, violations = check_tree(tmp_path)
    assert len(files) == len(ALLOWED) + 2
    assert [str(v) for v in violations] == [
        "realtime/channels/lobby.py:3: realtime may not import wallet (it may import: nothing of ours)"
    ]
