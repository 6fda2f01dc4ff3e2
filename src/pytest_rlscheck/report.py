"""Reporting the sweep: the terminal summary, and JSON, Markdown and SARIF files.

Results reach the report as plain dicts attached to each item's test report, so the same
code aggregates a plain run and an xdist run (where the controller only sees reports)."""

from __future__ import annotations

import contextlib

import json
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from . import __version__
from .access import RelationAccess, markdown_table, terminal_lines
from .findings import ObjectRef, Severity
from .rules import RULES
from .synthesis import summary_lines

__all__ = ["SweepReport"]

SARIF_LEVEL = {"error": "error", "warn": "warning", "info": "note"}


class SweepReport:
    def __init__(self, fail_on: Severity) -> None:
        self.fail_on = fail_on
        self.results: list[dict[str, Any]] = []
        self.notes: list[str] = []  # configuration problems found at collection
        #: The server the checks ran on and the stand-ins it had (``RlsSession.environment``).
        self.environment: dict[str, Any] = {}

    def add(self, result: dict[str, Any]) -> None:
        self.results.append(result)

    def __bool__(self) -> bool:
        return bool(self.results or self.notes)

    # -- aggregation ------------------------------------------------------------------

    def findings(self) -> list[dict[str, Any]]:
        return sorted(
            (f for r in self.results for f in r["findings"]),
            key=lambda f: (-Severity.parse(f["severity"]), f["object"], f["rule"]),
        )

    def ignored(self) -> list[dict[str, Any]]:
        return [f for r in self.results for f in r.get("ignored", ())]

    def by_rule(self) -> Counter[str]:
        return Counter(f["rule"] for f in self.findings())

    def tables(self) -> list[dict[str, Any]]:
        rows: dict[str, dict[str, Any]] = {}
        for result in self.results:
            if result["kind"] != "table":
                continue
            row = rows.setdefault(result["object"], {"table": result["object"], "error": 0, "warn": 0, "info": 0})
            facts = result["facts"]
            if "table" in facts:
                row.update(facts["table"])
            rule = RULES.get(result["rule"])
            if rule is not None and rule.table_columns is not None:
                row.update(rule.table_columns(facts))
            for finding in result["findings"]:
                row[finding["severity"]] += 1
        return [rows[k] for k in sorted(rows)]

    def access(self) -> list[RelationAccess]:
        """The access matrix: each relation's row, as its isolation check (or its
        access-changed check, which reads the same measurement) carries it."""
        rows: dict[str, RelationAccess] = {}
        for result in self.results:
            data = result.get("facts", {}).get("access")
            if data and result["object"] not in rows:
                rows[result["object"]] = RelationAccess.from_dict(data)
        return [rows[k] for k in sorted(rows)]

    def access_changes(self) -> dict[str, list[str]]:
        """What access-changed found differs, by relation (also when the run accepts it)."""
        return {r["object"]: list(r["facts"]["access_changed"]) for r in self.results
                if r.get("facts", {}).get("access_changed")}

    def removed_relations(self) -> list[str]:
        """Relations of the snapshot that no longer exist (their access-changed checks say so)."""
        return sorted(r["object"] for r in self.results if r.get("facts", {}).get("access_removed"))

    def synthesis(self) -> dict[str, Any]:
        """What the sweep synthesized (principals, rows), as its measured results carry it."""
        return next((r["facts"]["synthesis"] for r in self.results if r.get("facts", {}).get("synthesis")), {})

    def unused_ignores(self, configured: Iterable[str]) -> list[str]:
        used = {f"{f['rule']}:{name}" for f in self.ignored() for name in ObjectRef.from_dict(f["ref"]).ignore_names()}
        return [key for key in configured if key not in used]

    # -- terminal -----------------------------------------------------------------------

    def terminal_lines(self) -> list[str]:
        lines: list[str] = summary_lines(self.synthesis())
        tables = self.tables()
        if tables:
            width = max(len(t["table"]) for t in tables)
            verdict = max(14, *(len(t.get("isolation") or "-") for t in tables))  # "verified (select, … as alice/bob)"
            lines.append(
                f"{'table':<{width}}  {'RLS':<6}  {'S I U D':<7}  {'auth.uid() sel/upd/del':<22}  "
                f"{'isolation':<{verdict}}  err warn info"
            )
            for t in tables:
                rls = ("forced" if t.get("forced") else "on") if t.get("rls") else "OFF"
                policies = t.get("policies") or {}
                counts = " ".join(str(policies.get(c, 0)) for c in ("SELECT", "INSERT", "UPDATE", "DELETE"))
                evaluations = t.get("auth_uid_evaluations") or {}
                auth = "/".join("-" if evaluations.get(k) is None else str(evaluations[k]) for k in ("select", "update", "delete"))
                if evaluations and t.get("rows") is not None:
                    auth += f" ({t['rows']} rows)"
                lines.append(
                    f"{t['table']:<{width}}  {rls:<6}  {counts:<7}  {auth if evaluations else '-':<22}  "
                    f"{t.get('isolation') or '-':<{verdict}}  {t['error']:>3} {t['warn']:>4} {t['info']:>4}"
                )
        matrix = self.access()
        if matrix:
            lines.append("")
            lines += terminal_lines(matrix)
        by_rule = self.by_rule()
        if by_rule:
            lines.append("")
            lines.append("findings by rule: " + ", ".join(f"{rule} {n}" for rule, n in sorted(by_rule.items())))
        below = [f for f in self.findings() if Severity.parse(f["severity"]) < self.fail_on]
        if below:
            lines.append("")
            lines.append(f"below --rlscheck-fail-on={self.fail_on} (reported, not failing):")
            lines += [f"  {f['severity']:<5} {f['rule']} {f['object']}: {f['message']}" for f in below]
        for f in self.ignored():
            lines.append(f"  ignored {f['rule']}:{f['object']} — {f['reason']}")
        lines += self.notes
        return lines

    # -- files ----------------------------------------------------------------------------

    def write(self, path: Path) -> None:
        suffix = path.suffix.lower()
        if suffix == ".json":
            text = json.dumps(self.as_json(), indent=2, default=str)
        elif suffix == ".md":
            text = self.as_markdown()
        elif suffix == ".sarif":
            text = json.dumps(self.as_sarif(), indent=2, default=str)
        else:
            raise ValueError(f"--rlscheck-report: {path} must end in .json, .md or .sarif")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n", encoding="utf-8")

    def as_json(self) -> dict[str, Any]:
        return {
            "tool": "pytest-rlscheck",
            "version": __version__,
            "fail_on": str(self.fail_on),
            "server": self.environment.get("server"),
            "stand_ins": self.environment.get("stand_ins", []),
            "findings": [
                {
                    **{k: f[k] for k in ("rule", "severity", "object", "message", "fix", "file", "line")},
                    "fingerprint": f.get("fingerprint"),
                    **_rule_shape(f["rule"]),
                }
                for f in self.findings()
            ],
            "ignored": [
                {k: f[k] for k in ("rule", "severity", "object", "message", "reason")} for f in self.ignored()
            ],
            "tables": self.tables(),
            "access": [row.to_dict() for row in self.access()],
            "access_changes": self.access_changes(),
            "by_rule": dict(self.by_rule()),
            "synthesized": self.synthesis() or None,
        }

    def as_markdown(self) -> str:
        findings = self.findings()
        counts = Counter(f["severity"] for f in findings)
        out = [
            "## pytest-rlscheck",
            "",
            f"**{counts.get('error', 0)} error(s), {counts.get('warn', 0)} warning(s), {counts.get('info', 0)} note(s)**"
            f" · fails on {self.fail_on} and above",
            "",
        ]
        stand_ins = self.environment.get("stand_ins") or []
        if stand_ins:
            out += [f"Ran on stand-ins (simulated): " + "; ".join(f"`{s['extension']}` — {s['simulated']}" for s in stand_ins), ""]
        made = summary_lines(self.synthesis())
        if made:
            out += [*(f"- {line[0].upper()}{line[1:]}" for line in made), ""]
        tables = self.tables()
        if tables:
            out += ["| table | RLS | policies S/I/U/D | auth.uid() per query | isolation | findings |",
                    "|---|---|---|---|---|---|"]
            for t in tables:
                policies = t.get("policies") or {}
                evaluations = t.get("auth_uid_evaluations") or {}
                per_query = "/".join("–" if evaluations.get(k) is None else str(evaluations[k]) for k in ("select", "update", "delete"))
                rls = ("forced" if t.get("forced") else "on") if t.get("rls") else "**off**"
                out.append(
                    f"| `{t['table']}` | {rls} | {'/'.join(str(policies.get(c, 0)) for c in ('SELECT', 'INSERT', 'UPDATE', 'DELETE'))} "
                    f"| {per_query if evaluations else '–'} | {t.get('isolation') or '–'} "
                    f"| {t['error']} err, {t['warn']} warn, {t['info']} info |"
                )
            out.append("")
        matrix = self.access()
        if matrix:
            out += ["### Who can do what", "", *markdown_table(matrix), ""]
        changes = self.access_changes()
        if changes:
            out += ["### Access changed", ""]
            out += [f"- {line}" for lines in changes.values() for line in lines]
            out.append("")
        for severity in ("error", "warn", "info"):
            group = [f for f in findings if f["severity"] == severity]
            if not group:
                continue
            out += [f"### {severity}", ""]
            for f in group:
                where = f" ({f['file']}:{f['line']})" if f.get("file") else ""
                out.append(f"- **{f['rule']}** `{f['object']}`{where}: {f['message']}")
                if f.get("fix"):
                    out += ["  ```sql", *[f"  {line}" for line in f["fix"].splitlines()], "  ```"]
            out.append("")
        return "\n".join(out)

    def as_sarif(self) -> dict[str, Any]:
        rules = [
            {
                "id": rule.id,
                "name": rule.id,
                "shortDescription": {"text": rule.summary},
                "defaultConfiguration": {"level": SARIF_LEVEL[str(rule.severity)]},
                "properties": {"tags": list(rule.categories), "remediation": rule.remediation},
            }
            for rule in sorted(RULES.values(), key=lambda r: r.id)
        ]
        results = []
        for f in self.findings():
            result: dict[str, Any] = {
                "ruleId": f["rule"],
                "level": SARIF_LEVEL[f["severity"]],
                "message": {"text": f"{f['object']}: {f['message']}" + (f"\nFix: {f['fix']}" if f.get("fix") else "")},
            }
            if f.get("fingerprint"):
                result["partialFingerprints"] = {"rlscheck/v1": f["fingerprint"]}
            # the object always, the file and line where known: a result's places are its locations
            location: dict[str, Any] = {"logicalLocations": [{"fullyQualifiedName": f["object"]}]}
            if f.get("file"):
                region: dict[str, int] = {"startLine": int(f["line"] or 1)}
                if f.get("column"):
                    region["startColumn"] = int(f["column"])
                location["physicalLocation"] = {
                    "artifactLocation": {"uri": Path(f["file"]).as_posix()},
                    "region": region,
                }
            result["locations"] = [location]
            results.append(result)
        return {
            "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
            "version": "2.1.0",
            "runs": [
                {
                    "tool": {
                        "driver": {
                            "name": "pytest-rlscheck",
                            "version": __version__,
                            "informationUri": "https://pypi.org/project/pytest-rlscheck/",
                            "rules": rules,
                        }
                    },
                    "results": results,
                }
            ],
        }


def report_path_problem(path: str) -> str | None:
    """Why the report cannot be written to ``path`` (checked before the sweep, not after it),
    or None: the directories it would create are created and the file opened for writing
    (root passes every os.access check), then what did not exist before is removed."""
    target = Path(path)
    created: list[Path] = []
    try:
        for directory in reversed([d for d in target.parents if not d.exists()]):
            directory.mkdir()
            created.append(directory)
        existed = target.exists()
        with target.open("a", encoding="utf-8"):
            pass
        if not existed:
            target.unlink()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        where = f" ({exc.filename})" if exc.filename and str(exc.filename) != path else ""
        return f"--rlscheck-report {path}: cannot write the report there: {reason}{where}"
    finally:
        for directory in reversed(created):
            with contextlib.suppress(OSError):  # someone else put a file there meanwhile: theirs
                directory.rmdir()
    return None


def _rule_shape(rule_id: str) -> dict[str, Any]:
    """What every finding of a rule shares: its categories and where its remediation is."""
    rule = RULES.get(rule_id)
    if rule is None:
        return {"categories": [], "remediation": None}
    return {"categories": list(rule.categories), "remediation": rule.remediation}

