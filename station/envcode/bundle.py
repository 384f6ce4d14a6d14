"""The bundle on disk and on the wire: a set of text files, `path → YAML text`.

Parsing never trusts the input: YAML is read with a safe loader that also refuses duplicate
keys (PyYAML silently keeps the last one), every file is size-capped, and errors are
collected rather than raised one at a time, so a rejected bundle names every problem.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from station.core.errors import InvalidInput

MANIFEST = "station-environment.yaml"
FORMAT_VERSION = 1
MAX_FILE_BYTES = 1024 * 1024
MAX_FILES = 1000


class Errors:
    """Problems found in a bundle, each keyed by `file` or `file: entry`."""

    def __init__(self) -> None:
        self.by_field: dict[str, list[str]] = {}

    def add(self, path: str, message: str, entry: str | None = None) -> None:
        field = f"{path}: {entry}" if entry is not None else path
        self.by_field.setdefault(field, []).append(message)

    def __bool__(self) -> bool:
        return bool(self.by_field)

    def raise_if_any(self) -> None:
        if not self.by_field:
            return
        count = sum(len(m) for m in self.by_field.values())
        first = next(iter(self.by_field.items()))
        raise InvalidInput(
            f"The bundle is invalid ({count} problem{'s' if count != 1 else ''}); nothing was "
            f"changed. First: {first[0]}: {first[1][0]}",
            errors=self.by_field,
        )


class DuplicateKey(yaml.YAMLError):
    def __init__(self, key: object, line: int) -> None:
        super().__init__(f"duplicate key {key!r}")
        self.key = key
        self.line = line


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            duplicate = key in seen
            seen.add(key)
        except TypeError:  # an unhashable key: construct_mapping reports it properly
            continue
        if duplicate:
            raise DuplicateKey(key, key_node.start_mark.line + 1)
    return loader.construct_mapping(node, deep=True)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_yaml(path: str, text: str, errors: Errors) -> tuple[bool, Any]:
    """(ok, document). A syntax error or duplicate key is recorded against `path`."""
    try:
        return True, yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except DuplicateKey as exc:
        errors.add(path, f"given twice (line {exc.line}); each name may appear once",
                   entry=str(exc.key))
    except yaml.MarkedYAMLError as exc:
        where = f" at line {exc.problem_mark.line + 1}" if exc.problem_mark else ""
        errors.add(path, f"YAML syntax error{where}: {exc.problem or exc}")
    except yaml.YAMLError as exc:
        errors.add(path, f"YAML error: {exc}")
    return False, None


def dump_yaml(data: Any, header: str = "") -> str:
    """Deterministic, readable YAML: block style, sorted keys, unicode kept."""
    body = yaml.safe_dump(data, sort_keys=True, default_flow_style=False, allow_unicode=True,
                          width=100)
    return header + body


def check_files(files: Mapping[Any, Any], errors: Errors) -> dict[str, str]:
    """The well-formed part of a `{path: text}` mapping; every bad entry is recorded."""
    if len(files) > MAX_FILES:
        errors.add("files", f"At most {MAX_FILES} files.")
        return {}
    clean: dict[str, str] = {}
    for path, text in files.items():
        if not isinstance(path, str) or not _safe_path(path):
            errors.add(str(path), "not a valid bundle path (relative, '/'-separated, no '..')")
        elif not isinstance(text, str):
            errors.add(path, "file contents must be text")
        elif len(text.encode()) > MAX_FILE_BYTES:
            errors.add(path, f"larger than {MAX_FILE_BYTES // 1024} KiB")
        else:
            clean[path] = text
    return clean


def _safe_path(path: str) -> bool:
    parts = path.split("/")
    return bool(path) and not path.startswith("/") and all(
        p not in {"", ".", ".."} and "\\" not in p and "\x00" not in p for p in parts)


# --- directories ------------------------------------------------------------------------------


def _visible(relative: Path) -> bool:
    # Dotfiles (.git, .DS_Store, editor swap files) are never part of a bundle.
    return not any(part.startswith(".") for part in relative.parts)


def read_dir(directory: Path) -> dict[str, str]:
    """Every visible file under `directory`, as `{posix path: text}`."""
    if not directory.is_dir():
        raise InvalidInput.field("bundle", f"{directory} is not a directory.")
    files: dict[str, str] = {}
    for path in sorted(directory.rglob("*")):
        relative = path.relative_to(directory)
        if path.is_file() and _visible(relative):
            try:
                files[relative.as_posix()] = path.read_text(encoding="utf-8")
            except UnicodeDecodeError as exc:
                raise InvalidInput.field(relative.as_posix(), "not UTF-8 text") from exc
    return files


def write_dir(directory: Path, files: Mapping[str, str], owned: Any) -> list[str]:
    """Write `files` into `directory`; remove bundle files a previous export left that this
    one no longer has. Refuses (before writing) when the directory holds foreign files, so an
    export never produces a bundle that would not apply. Returns the paths written."""
    existing = read_dir(directory) if directory.exists() else {}
    foreign = sorted(p for p in existing if p != MANIFEST and not owned(p))
    if foreign:
        raise InvalidInput.field(
            "directory", f"{directory} holds files that are not part of a bundle: "
            f"{', '.join(foreign[:5])}; export into an empty directory.")
    directory.mkdir(parents=True, exist_ok=True)
    for stale in sorted(set(existing) - set(files)):
        (directory / stale).unlink()
    for path, text in files.items():
        target = directory / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    return list(files)
