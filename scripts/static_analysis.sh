#!/usr/bin/env bash
# Static analysis checklist (issue #8): vyper-guard over every deployable contract and the
# library modules. A checklist, not a gate: findings never fail the run; only a tool that
# cannot be installed or run (or a detector that crashes) does. See docs/static-analysis.md.
#
#   scripts/static_analysis.sh          (or: make static)
#
# Tools: a venv of their own, .venv-tools/, with vyper-guard and its dependencies pinned
# below, installed from PyPI once (again only when the pins change). Reports:
# reports/static-analysis/<Contract>.txt (readable, each finding with its triage verdict
# from docs/static-analysis.md) and <Contract>.json (the tool's raw report).
# Exit: 0 with or without findings; 1 when a detector crashed; 2 when the tool failed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

PY="${PY:-python3.11}"
VENV=.venv-tools
OUT=reports/static-analysis
DOC=docs/static-analysis.md
CONTRACTS=(Oracle Vault Perp Configurator RiskEngine PerpReader OrderBook OracleFeed)
LIBS=(math market_types settlement)

# vyper-guard 0.7.0 and exactly what it installed with (pip freeze of a clean venv)
PINS="vyper-guard==0.7.0
annotated-doc==0.0.7
annotated-types==0.8.0
certifi==2026.10.18
charset-normalizer==3.5.2
idna==3.20
markdown-it-py==4.3.0
mdurl==0.1.2
pydantic==2.14.3
pydantic_core==2.50.4
Pygments==2.21.0
python-dotenv==1.2.4
PyYAML==6.0.3
requests==2.34.2
rich==15.0.0
shellingham==1.5.4
typer==0.29.2
typing-inspection==0.4.5
typing_extensions==4.16.0
urllib3==2.8.0"

fail() { echo "static-analysis: $*" >&2; exit 2; }

# ---------------------------------------------------------------- tools venv

stamp="$VENV/.pins"
if [[ ! -x "$VENV/bin/vyper-guard" || ! -f "$stamp" || "$(cat "$stamp")" != "$PINS" ]]; then
    command -v "$PY" >/dev/null || fail "$PY not found (the tools venv needs Python 3.11)"
    echo "static-analysis: installing vyper-guard into $VENV (PyPI) ..."
    [[ -x "$VENV/bin/python" ]] || "$PY" -m venv "$VENV" || fail "cannot create $VENV"
    printf '%s\n' "$PINS" > "$VENV/requirements.txt"
    if ! "$VENV/bin/python" -m pip install --disable-pip-version-check --no-input -q \
            -r "$VENV/requirements.txt" > "$VENV/install.log" 2>&1; then
        cat "$VENV/install.log" >&2
        fail "pip install of the pinned tools failed (log above, also in $VENV/install.log)"
    fi
    printf '%s' "$PINS" > "$stamp"
fi
version="$("$VENV/bin/vyper-guard" --version 2>&1)" || fail "vyper-guard does not start: $version"

# ---------------------------------------------------------------- run

mkdir -p "$OUT"
targets=()
for c in "${CONTRACTS[@]}"; do targets+=("$c:contracts/$c.vy"); done
for l in "${LIBS[@]}"; do targets+=("lib_$l:contracts/lib/$l.vy"); done

echo "static-analysis: $version, semantic mode source, ${#targets[@]} files -> $OUT/"
for t in "${targets[@]}"; do
    name="${t%%:*}"
    src="${t#*:}"
    [[ -f "$src" ]] || fail "$src not found"
    rm -f "$OUT/$name.json"
    # --semantic-mode source: the same findings as the compiler mode (checked on 0.4.3),
    # without a Vyper compiler in the tools venv. No --ci: findings do not fail the run.
    if ! "$VENV/bin/vyper-guard" analyze "$src" --semantic-mode source --no-priority-triage \
            -f json -o "$OUT/$name.json" > "$OUT/$name.log" 2>&1 || [[ ! -s "$OUT/$name.json" ]]; then
        cat "$OUT/$name.log" >&2
        fail "vyper-guard failed on $src (log above, also in $OUT/$name.log)"
    fi
    rm -f "$OUT/$name.log"
done

# ---------------------------------------------------------------- reports and summary

names=()
for t in "${targets[@]}"; do names+=("${t%%:*}"); done
rc=0
"$VENV/bin/python" - "$DOC" "$OUT" "${names[@]}" <<'PYEOF' || rc=$?
import json
import re
import sys
from pathlib import Path

doc_path, out = Path(sys.argv[1]), Path(sys.argv[2])
names = sys.argv[3:]
SEVERITIES = ("critical", "high", "medium", "low", "info")

# Triage from the doc: under "### <Name>" headings, table rows
# | detector | `tool title` | line | verdict | why |
triaged: dict[str, dict[str, tuple[str, str]]] = {}
current = None
if doc_path.exists():
    for line in doc_path.read_text(encoding="utf-8").splitlines():
        heading = re.match(r"^###\s+(?:contracts/)?(?:lib/)?([A-Za-z_]+)(?:\.vy)?\s*$", line)
        if heading:
            current = heading.group(1)
            current = current if current in names else "lib_" + current
            triaged.setdefault(current, {})
            continue
        if current and line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if len(cells) >= 5 and cells[1].startswith("`") and cells[1].endswith("`"):
                triaged[current][cells[1].strip("`")] = (cells[3], cells[4])

crashed = 0
untriaged_total = 0
total = 0
for name in names:
    report = json.loads((out / f"{name}.json").read_text(encoding="utf-8"))
    findings = report.get("findings", [])
    summary = report.get("summary", {})
    failed = report.get("failed_detectors") or []
    crashed += len(failed)
    known = triaged.get(name, {})
    lines = [
        f"{report['tool']['name']} {report['tool']['version']} on {report['file_path']}",
        f"semantic engine: {report['analysis_context'].get('semantic_engine')}; "
        f"detectors run: {len(report.get('detectors_run', []))}; at {report.get('timestamp')}",
    ]
    for d in failed:
        lines.append(f"DETECTOR CRASHED: {d}: {report.get('detector_errors', {}).get(d, '?')}")
    counts = ", ".join(f"{s} {summary.get(s, 0)}" for s in SEVERITIES)
    untriaged = [f for f in findings if f["title"] not in known]
    untriaged_total += len(untriaged)
    total += len(findings)
    lines.append(f"{len(findings)} findings ({counts}); not yet triaged in {doc_path}: {len(untriaged)}")
    lines.append("")
    order = {s.upper(): i for i, s in enumerate(SEVERITIES)}
    for f in sorted(findings, key=lambda f: (order.get(f["severity"], 9), f.get("line_number") or 0)):
        verdict, why = known.get(f["title"], ("UNTRIAGED", "add it to " + str(doc_path)))
        lines.append(f"[{f['severity']}] {f['detector']}  line {f.get('line_number')}  {f['title']}")
        lines.append(f"    triage: {verdict}: {why}")
        lines.append("    " + " ".join(f["description"].split()))
        if f.get("fix_suggestion"):
            lines.append("    tool's suggestion: " + " ".join(f["fix_suggestion"].split()))
        lines.append("")
    (out / f"{name}.txt").write_text("\n".join(lines), encoding="utf-8")
    flag = f"  UNTRIAGED {len(untriaged)}" if untriaged else ""
    flag += f"  CRASHED {len(failed)}" if failed else ""
    print(f"  {name:<17} {len(findings):>3} findings  ({counts}){flag}")

print(
    f"static-analysis: {total} findings in {len(names)} files, {untriaged_total} not yet triaged "
    f"in {doc_path} (reports: {out}/<Contract>.txt)"
)
sys.exit(3 if crashed else 0)
PYEOF
if [[ $rc -eq 3 ]]; then
    echo "static-analysis: a detector crashed: its coverage is missing (see the reports)" >&2
    exit 1
elif [[ $rc -ne 0 ]]; then
    fail "the report step failed (exit $rc)"
fi
exit 0
