"""Atomic writes: a temp file (or folder) next to the target, renamed into place when complete.

An interrupted run leaves the previous output intact, never a half-written file. Written files
get the mode the umask allows (as any other file), not the temp file's private one.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq


@contextmanager
def atomic_path(target: Path | str) -> Iterator[Path]:
    """Yield a temp path beside `target`; it replaces `target` on success, is removed on error."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        tmp_path.chmod(_file_mode())
        os.replace(tmp_path, target)
    finally:
        tmp_path.unlink(missing_ok=True)


def _file_mode() -> int:
    """What `open` would give a new file under the current umask."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _move(src: Path, dest: Path) -> None:
    """Rename `src` to `dest`; across devices (an output folder that is a mount point), copy it
    beside `dest` first, then rename there."""
    try:
        os.replace(src, dest)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        near = dest.with_name(f".{dest.name}.tmp")
        shutil.copy2(src, near)
        os.replace(near, dest)


def check_output(target: Path | str, kind: str = "folder") -> None:
    """Refuse, before any work, an output that cannot be written: a file where a folder is
    wanted (or the reverse), or a place the user may not write to."""
    target = Path(target)
    if target.exists() and target.is_dir() != (kind == "folder"):
        raise ValueError(f"{target} exists and is not a {kind}: choose another output path")
    parent = next((p for p in (target, *target.parents) if p.exists()), Path("."))
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"cannot write to {parent}: choose an output path you can write to")


@contextmanager
def atomic_dir(target: Path | str) -> Iterator[Path]:
    """Yield an empty temp folder; on success its files replace those of `target` one by one.

    Files in `target` that the run did not write are left alone; each written file appears whole.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        yield tmp
        for src in sorted(p for p in tmp.rglob("*") if p.is_file()):
            dest = target / src.relative_to(tmp)
            dest.parent.mkdir(parents=True, exist_ok=True)
            _move(src, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_parquet(data: pd.DataFrame | pa.Table, path: Path | str) -> None:
    """Write a DataFrame or Arrow table as Parquet, atomically. The Arrow schema is the whole
    record: pandas' own metadata is left out (it cannot name nested Arrow dtypes)."""
    if isinstance(data, pd.DataFrame):
        data = pa.Table.from_pandas(data, preserve_index=False).replace_schema_metadata()
    # Dictionaries pay off for repeated text (segments, tiers), not for measurements.
    coded = [f.name for f in data.schema if not pa.types.is_floating(f.type)]
    with atomic_path(path) as tmp:
        pq.write_table(data, tmp, compression="zstd", use_dictionary=coded)


def write_text(text: str, path: Path | str) -> None:
    """Write UTF-8 text atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
