"""The README's configuration table lists every environment variable the code reads."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
READS = re.compile(r"""env_(?:str|bool|int|list|optional)\(\s*["']([A-Z0-9_]+)["']""")
ENVIRON = re.compile(
    r"""os\.environ(?:\.get)?[\[(]\s*["']((?:STATION|DATABASE|CELERY)_[A-Z0-9_]+)["']"""
)


def _variables_in_code() -> set[str]:
    names: set[str] = set()
    for path in ROOT.glob("*/**/*.py"):
        if any(part in {".venv", "tests", "benchmarks", "var"} for part in path.parts):
            continue
        text = path.read_text()
        names |= set(READS.findall(text)) | set(ENVIRON.findall(text))
    return names


def test_every_environment_variable_is_documented_in_readme():
    readme = (ROOT / "README.md").read_text()
    documented = set(re.findall(r"^\| `([A-Z0-9_]+)` \|", readme, flags=re.M))
    used = _variables_in_code()
    assert used, "the scan found no variables: the pattern is broken"
    missing = sorted(used - documented)
    assert not missing, f"README configuration table lacks: {missing}"


def test_readme_gives_the_two_commands():
    readme = (ROOT / "README.md").read_text()
    assert "./run up" in readme and "./run test" in readme
    assert (ROOT / "run").stat().st_mode & 0o111
