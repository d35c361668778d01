"""Runs each pgTAP file in supabase/tests as one pytest test, showing the failing assertions."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.harness import pgtap_files

PLAN = re.compile(r"^1\.\.(\d+)$", re.M)


@pytest.mark.parametrize("path", pgtap_files(), ids=lambda p: p.name)
def test_pgtap_file(path: Path, database_url: str) -> None:
    result = subprocess.run(
        ["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", database_url, "-f", str(path)],
        capture_output=True, text=True, timeout=300,
    )
    output = result.stdout
    failures = [line for line in output.splitlines() if line.startswith("not ok")]
    details = "\n".join(line for line in output.splitlines() if line.startswith("#"))
    assert result.returncode == 0, f"psql failed on {path.name}:\n{result.stderr}\n{output}"
    assert not failures, f"{path.name} failed:\n" + "\n".join(failures) + "\n" + details
    plan = PLAN.search(output)
    assert plan, f"{path.name} printed no plan:\n{output}"
    passed = len(re.findall(r"^ok \d+", output, re.M))
    assert passed == int(plan.group(1)), f"{path.name}: planned {plan.group(1)}, passed {passed}\n{details}"
