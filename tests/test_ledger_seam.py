"""One seam for the ledger: only ingestion and billing touch the events, their cost changes
and the rollups; every other app reads them through their selectors and services
(`ingestion.selectors`, `ingestion.services`, `billing.selectors`, `billing.rollups`), so
that another store (ClickHouse) can later slot in behind them.

An import-linter contract cannot say this: the same apps use other models of
`ingestion.models` and `billing.models` (Feature, Budget...). The source is
read instead, names and strings alike (`apps.get_model("ingestion", "UsageEvent")`)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LEDGER = {"UsageEvent", "CostChange", "UsageRollup", "FeatureRollup", "DailyKey",
          "RollupWatermark"}  # fmt: skip
OUTSIDE = ("finops", "console", "statements", "portal", "ops", "config")
# Exceptions, by (path, name): none.
KNOWN: set[tuple[str, str]] = set()


def _references(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, name) for each mention of a ledger model: a name, an attribute, an imported
    name or a string."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id in LEDGER:
            found.append((node.lineno, node.id))
        elif isinstance(node, ast.Attribute) and node.attr in LEDGER:
            found.append((node.lineno, node.attr))
        elif isinstance(node, ast.ImportFrom):
            found += [(node.lineno, a.name) for a in node.names if a.name in LEDGER]
        elif isinstance(node, ast.Constant) and node.value in LEDGER:
            found.append((node.lineno, node.value))
    return found


def _modules() -> list[Path]:
    return [
        path
        for app in OUTSIDE
        for path in sorted((ROOT / app).rglob("*.py"))
        if "migrations" not in path.parts
    ]


def test_only_ingestion_and_billing_touch_the_ledger_models() -> None:
    offenders = []
    for path in _modules():
        relative = path.relative_to(ROOT).as_posix()
        for line, name in _references(ast.parse(path.read_text(), filename=relative)):
            if (relative, name) not in KNOWN:
                offenders.append(f"{relative}:{line}: {name}")
    assert offenders == [], "use a selector of ingestion or billing instead"


def test_the_check_sees_each_kind_of_reference() -> None:
    source = (
        "from billing.models import UsageRollup\n"
        "import ingestion.models\n"
        "ingestion.models.CostChange.objects.all()\n"
        "apps.get_model('billing', 'DailyKey')\n"
    )
    names = [name for _, name in _references(ast.parse(source))]
    assert sorted(names) == ["CostChange", "DailyKey", "UsageRollup"]
