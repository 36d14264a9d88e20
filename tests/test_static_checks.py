"""Static proofs that run in `make test`: the OpenAPI schema validates without a warning, and bandit finds nothing
at medium severity and confidence in our apps. (`manage.py check --deploy` is in tests/test_platform.py.)"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from django.apps import apps
from django.conf import settings


def test_the_openapi_schema_validates_without_warnings(tmp_path):
    out = subprocess.run([sys.executable, "manage.py", "spectacular", "--validate", "--fail-on-warn",
                          "--file", str(tmp_path / "schema.yaml")], cwd=settings.BASE_DIR, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-5000:]
    assert "/api/v1/customers/" in (tmp_path / "schema.yaml").read_text()


def our_apps() -> list[str]:
    """The directories of our own Django apps (not Django's, DRF's or any other package's): every app, present
    and future, is scanned without this list needing an edit."""
    base = Path(settings.BASE_DIR).resolve()
    return sorted(str(Path(app.path).resolve().relative_to(base)) for app in apps.get_app_configs()
                  if Path(app.path).resolve().parent == base)


def test_bandit_finds_nothing_at_medium_severity_and_confidence():
    """`bandit -r <apps> -ll -ii`. A false positive gets `# nosec BXXX` on its line with the reason beside it (a
    SQL text spliced from our own constants and model names, a chart whose texts are all escaped); a real
    finding gets fixed."""
    targets = our_apps()
    assert {"contactcenter", "events", "customers", "interactions", "routing"} <= set(targets)
    out = subprocess.run([sys.executable, "-m", "bandit", "-r", *targets, "--severity-level", "medium",
                          "--confidence-level", "medium", "--format", "json", "--quiet"],
                         cwd=settings.BASE_DIR, capture_output=True, text=True, timeout=120)
    report = json.loads(out.stdout)
    assert not report["errors"], report["errors"]
    findings = [f"{r['filename']}:{r['line_number']} {r['test_id']} ({r['issue_severity']}/{r['issue_confidence']})"
                f" {r['issue_text']}" for r in report["results"]]
    assert not findings, "\n".join(findings)
    assert out.returncode == 0, out.stderr[-3000:]
