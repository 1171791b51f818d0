"""Static checks over the code's SQL: every DDL statement names its schema, and no
value is escaped by hand into SQL text (values are bound parameters; dbt quotes
configured values through its literal macros).

The Python check reads string literals and f-strings with the AST and resolves their
placeholders from module constants (following imports) and local assignments, so
`CREATE TABLE {LEDGER_TABLE}` is judged by what LEDGER_TABLE holds."""

from __future__ import annotations

import ast
import functools
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PYTHON_DIRS = ("warehouse", "churn_assets", "sensors", "serving", "bench")
SQL_DIRS = ("dbt_project/macros", "dbt_project/models", "dbt_project/tests")
UNKNOWN = "<?>"  # a placeholder the checker cannot resolve
# Objects that live in a schema. Triggers and indexes take their table's schema, so
# their ON clause is what must be qualified.
DDL = re.compile(
    r"\b(?:CREATE(?:\s+OR\s+REPLACE)?|DROP|ALTER|TRUNCATE|LOCK)\s+"
    r"(?:(?:TEMP|TEMPORARY|UNLOGGED|MATERIALIZED)\s+)?"
    r"(?:TABLE|VIEW|FUNCTION|SEQUENCE|TYPE|MACRO)\s+"
    r"(?:IF\s+(?:NOT\s+)?EXISTS\s+)?(?P<name>[^\s(;]+)"
    r"|\b(?:CREATE|DROP)\s+(?:TRIGGER|INDEX)\s+(?:IF\s+(?:NOT\s+)?EXISTS\s+)?\S+\s+"
    r"(?:(?:BEFORE|AFTER|INSTEAD\s+OF)\s+[\w\s]+?\s+)?ON\s+(?P<on>[^\s(;]+)"
)
HAND_ESCAPING = re.compile(r"""\.replace\(\s*(["'])(?:'|\\')\1\s*,\s*(["'])(?:''|\\'\\')\2\s*\)""")


def _python_files() -> list[Path]:
    return sorted(p for d in PYTHON_DIRS for p in (ROOT / d).rglob("*.py"))


def _sql_files() -> list[Path]:
    return sorted(p for d in SQL_DIRS if (ROOT / d).is_dir() for p in (ROOT / d).rglob("*.sql"))


@functools.cache
def _module(path: Path) -> tuple[dict[str, ast.expr], dict[str, tuple[str, str]]]:
    """Module-level string assignments, and names imported from other modules."""
    tree = ast.parse(path.read_text())
    assigned: dict[str, ast.expr] = {}
    imported: dict[str, tuple[str, str]] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            if isinstance(target, ast.Name):
                assigned[target.id] = node.value
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value:
            assigned[node.target.id] = node.value
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                imported[alias.asname or alias.name] = (node.module, alias.name)
    return assigned, imported


def _module_path(module: str) -> Path | None:
    base = ROOT / module.replace(".", "/")
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.exists():
            return candidate
    return None


def _resolve_global(path: Path, name: str, depth: int = 0) -> str:
    assigned, imported = _module(path)
    if name in assigned:
        return _render(assigned[name], path, {}, depth + 1)
    if name in imported and depth < 10:
        module, original = imported[name]
        source = _module_path(module)
        if source is not None:
            return _resolve_global(source, original, depth + 1)
    return UNKNOWN


def _render(node: ast.expr, path: Path, local: dict[str, ast.expr], depth: int = 0) -> str:
    """The text a string expression evaluates to, with UNKNOWN for what cannot be known."""
    if depth > 20:
        return UNKNOWN
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(_render(part, path, local, depth + 1) for part in node.values)
    if isinstance(node, ast.FormattedValue):
        return _render(node.value, path, local, depth + 1)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _render(node.left, path, local, depth + 1) + _render(
            node.right, path, local, depth + 1
        )
    if isinstance(node, ast.Name):
        if node.id in local:
            rest = {k: v for k, v in local.items() if k != node.id}
            return _render(local[node.id], path, rest, depth + 1)
        return _resolve_global(path, node.id, depth + 1)
    return UNKNOWN


def _local_assignments(function: ast.AST) -> dict[str, ast.expr]:
    found: dict[str, ast.expr] = {}
    for node in ast.walk(function):
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            if isinstance(target, ast.Name):
                found[target.id] = node.value
    return found


def _python_strings(path: Path) -> list[tuple[int, str]]:
    """(line, rendered text) of every string expression that is not a docstring."""
    tree = ast.parse(path.read_text())
    docstrings = {
        id(body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and (body := node.body)
        and isinstance(body[0], ast.Expr)
        and isinstance(body[0].value, ast.Constant)
    }
    parts: set[int] = set()
    out: list[tuple[int, str]] = []

    def visit(node: ast.AST, local: dict[str, ast.expr]) -> None:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            local = {**local, **_local_assignments(node)}
        if isinstance(node, ast.JoinedStr):
            parts.update(id(v) for v in ast.walk(node) if v is not node)
            out.append((node.lineno, _render(node, path, local)))
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in parts
            and id(node) not in docstrings
        ):
            out.append((node.lineno, node.value))
        for child in ast.iter_child_nodes(node):
            visit(child, local)

    visit(tree, {})
    return out


def unqualified_ddl(text: str) -> list[str]:
    """Statements in text whose object (or trigger/index table) has no schema."""
    found = []
    for match in DDL.finditer(text):
        name = match.group("name") or match.group("on")
        if "." not in name and not name.startswith("{{"):
            found.append(match.group(0).strip())
    return found


def _sql_text(path: Path) -> str:
    """A dbt SQL file without its Jinja and SQL comments, upper-cased for the pattern."""
    text = re.sub(r"\{#.*?#\}", " ", path.read_text(), flags=re.S)
    text = re.sub(r"--[^\n]*", " ", text)
    return text.upper()


def test_the_checker_catches_what_it_should() -> None:
    assert unqualified_ddl("DROP TABLE IF EXISTS _staged") == ["DROP TABLE IF EXISTS _staged"]
    assert unqualified_ddl("CREATE TEMP TABLE scan AS SELECT 1")
    assert unqualified_ddl("ALTER TABLE events ADD COLUMN x int")
    assert unqualified_ddl("CREATE TRIGGER t BEFORE UPDATE OR DELETE ON ledger FOR EACH ROW")
    assert not unqualified_ddl("DROP TABLE IF EXISTS pg_temp._staged")
    assert not unqualified_ddl("CREATE TABLE IF NOT EXISTS raw.events (a int)")
    assert not unqualified_ddl("CREATE TRIGGER t BEFORE UPDATE ON ops.ledger FOR EACH ROW")
    assert not unqualified_ddl("CREATE SCHEMA IF NOT EXISTS raw")
    tree = ast.parse('T = f"{S}.t"\nS = "raw"\nU = "plain"\n')
    assert _render(tree.body[0].value, ROOT / "warehouse" / "connection.py", {}) == "<?>.t"
    assert HAND_ESCAPING.search("""v.replace("'", "''")""")
    assert HAND_ESCAPING.search("""v.replace('\\'', '\\'\\'')""")


@pytest.mark.parametrize("path", _python_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_python_ddl_names_its_schema(path: Path) -> None:
    problems = [
        f"{path.relative_to(ROOT)}:{line}: {statement}"
        for line, text in _python_strings(path)
        for statement in unqualified_ddl(text)
    ]
    assert not problems, "DDL without a schema:\n" + "\n".join(problems)


@pytest.mark.parametrize("path", _sql_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_dbt_sql_ddl_names_its_schema(path: Path) -> None:
    assert not unqualified_ddl(_sql_text(path))


def test_no_value_is_escaped_by_hand_into_sql() -> None:
    """Quotes doubled by hand are how injection starts; bind the value instead."""
    offenders = [
        f"{path.relative_to(ROOT)}:{n}"
        for path in _python_files()
        for n, line in enumerate(path.read_text().splitlines(), start=1)
        if HAND_ESCAPING.search(line)
    ]
    assert not offenders, offenders


def test_dbt_splices_configured_values_only_through_the_literal_macros() -> None:
    """`'{{ var(...) }}'` or `'{{ x }}'` inside quotes would break on a quote in the
    value; configured strings go through sql_string / sql_list, integers through
    int_var."""
    quoted_jinja = re.compile(r"'\{\{.*?\}\}'")
    bare_var = re.compile(r"\{\{\s*var\(")
    offenders = [
        f"{path.relative_to(ROOT)}: {match.group(0)}"
        for path in _sql_files()
        for pattern in (quoted_jinja, bare_var)
        for match in pattern.finditer(re.sub(r"\{#.*?#\}", " ", path.read_text(), flags=re.S))
    ]
    assert not offenders, offenders
