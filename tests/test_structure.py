"""The shape of the code, enforced: no module reaches into another's private names, the
checks use the rls object through its public protocol, static rules do not import the
probe engine, and every rule id is written once."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from pytest_rlscheck.client import Rls
from pytest_rlscheck.protocol import RlsProtocol
from pytest_rlscheck.rules import RULES, RUNNERS

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "pytest_rlscheck"
MODULES = sorted(PACKAGE.rglob("*.py"))
#: Private names of other projects we use knowingly, each with its reason.
ALLOWED = {
    ("cmdline.py", "_parser"): "pytest offers no public way to parse its own options before it configures itself",
}


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _reach_ins(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("pytest_rlscheck")):
            found += [f"{path.name}:{node.lineno} imports {a.name}" for a in node.names if _private(a.name)]
        elif isinstance(node, ast.Attribute) and _private(node.attr):
            owner = node.value
            if isinstance(owner, ast.Name) and owner.id in ("self", "cls"):
                continue
            if (path.name, node.attr) in ALLOWED:
                continue
            found.append(f"{path.name}:{node.lineno} reads .{node.attr} of {ast.unparse(owner)}")
    return found


def _same_class_access(path: Path, finding: str) -> bool:
    """``other._x`` where ``other`` is an instance of the class that defines ``_x`` in the
    same module (a class's own helpers, a dataclass's private fields)."""
    attr = finding.rsplit(".", 1)[1].split(" ")[0]
    return bool(re.search(rf"\bself\.{re.escape(attr)}\b", path.read_text()))


def test_no_module_reaches_into_another_modules_private_names() -> None:
    found = [f for path in MODULES for f in _reach_ins(path) if not _same_class_access(path, f)]
    assert not found, "private names used across modules:\n" + "\n".join(found)


def test_the_check_finds_a_reach_in(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("from .client import _secret\n\ndef f(rls):\n    return rls._identities\n")
    assert len(_reach_ins(module)) == 2


def test_rls_implements_the_public_protocol(rls) -> None:
    assert isinstance(rls, Rls) and isinstance(rls, RlsProtocol)
    members = [n for n in dir(RlsProtocol) if not n.startswith("_")] + list(RlsProtocol.__annotations__)
    assert len(members) > 15 and all(hasattr(rls, n) for n in members)


PROBE_ENGINE = {
    "isolation", "client", "assertions", "attribution", "fuzz", "session", "scratch", "template", "databases", "handover",
}


def test_static_rules_do_not_import_the_probe_engine() -> None:
    static = {rule.check.__module__ for rule in RULES.values() if rule.check is not None}
    assert len(static) >= 10
    for module in static:
        path = PACKAGE / "rules" / f"{module.rpartition('.')[2]}.py"
        imported = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                imported |= {(node.module or "").split(".")[0]} | {a.name for a in node.names}
        assert not imported & PROBE_ENGINE, f"{path.name} imports {sorted(imported & PROBE_ENGINE)}"


def test_every_rule_id_is_written_once() -> None:
    sources = {path: path.read_text() for path in MODULES}
    for rule_id in [*RULES, *RUNNERS]:
        places = [f"{p.name}:{n}" for p, text in sources.items() for n in [text.count(f'"{rule_id}"')] if n]
        assert sum(int(p.rsplit(":", 1)[1]) for p in places) == 1, f"{rule_id} is written in {places}"


def test_rules_have_the_fixed_finding_shape() -> None:
    for rule in RULES.values():
        assert rule.categories and set(rule.categories) <= {"SECURITY", "PERFORMANCE", "CORRECTNESS"}, rule.id
        assert rule.remediation.endswith(f"#{rule.id}")
        assert (rule.check is None) or (rule.measure is None), rule.id
