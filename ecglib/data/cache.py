"""The cache of prepared beats and synthetic records, made so that it cannot lie.

An entry's key covers the content of its input files (:func:`fingerprint`: BLAKE2b of their bytes), and each
entry is verified before use: a beats file against the checksum stored beside it (NAME.npz.blake2b), a folder of
synthetic records against its CHECKSUMS file. A damaged entry is removed and rebuilt with one line on stderr.
"""
from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..files import atomic_write_text, clear_stale_temporaries, file_digest, temporary_name


def fingerprint(folder: Path, names: Iterable[str]) -> list[tuple[str, int, str]]:
    """(name, size, BLAKE2b of the bytes) of each input file: the cache key follows the content, so that a file
    changed in place, even with its size and modification time kept, is never answered from the cache."""
    out = []
    for name in sorted(names):
        p = folder / name
        if p.is_file():
            try:
                out.append((name, p.stat().st_size, file_digest(p)))
            except OSError as exc:
                raise InputError(f"{p}: cannot read ({exc.strerror or exc})") from None
    return out


def checksum_file(entry: Path) -> Path:
    return entry.with_name(entry.name + ".blake2b")


def read_cache_entry(entry: Path, load: Callable[[Path], Any]) -> Any:
    """``load(entry)`` (the beats) when the entry's bytes match the checksum stored beside it; None when there is
    no entry. A damaged entry (no checksum, another checksum, unreadable: ``load`` raises InputError) is removed
    with one line on stderr, and the caller rebuilds it."""
    clear_stale_temporaries(entry.parent)  # what a writer killed earlier left here
    if not entry.exists():
        return None
    problem = None
    try:
        stored = checksum_file(entry).read_text(encoding="utf-8").strip()
        if file_digest(entry) != stored:
            problem = "does not match its checksum"
    except (OSError, UnicodeDecodeError):
        problem = "has no readable checksum"
    if problem is None:
        try:
            return load(entry)
        except InputError as exc:
            problem = f"is unreadable ({str(exc).split(': ', 1)[-1][:80]})"
    say(f"{entry}: cache entry {problem}; rebuilding it")
    for path in (entry, checksum_file(entry)):
        path.unlink(missing_ok=True)
    return None


def write_cache_entry(beats: Any, entry: Path, save: Callable[[Any, Path], None]) -> None:
    """``save(beats, entry)``, then the entry's checksum beside it (an entry without one is never used); a cache
    that cannot be written (read-only, full) only costs speed."""
    try:
        save(beats, entry)
        atomic_write_text(checksum_file(entry), file_digest(entry) + "\n")
    except (InputError, OSError):
        for path in (entry, checksum_file(entry)):
            try:
                path.unlink(missing_ok=True)
            except OSError:
                pass


CHECKSUMS = "CHECKSUMS"


def write_checksums(folder: Path) -> None:
    """Write folder/CHECKSUMS: the BLAKE2b of every other file in the folder, one "DIGEST  NAME" per line."""
    lines = [f"{file_digest(p)}  {p.name}" for p in sorted(folder.iterdir())
             if p.is_file() and p.name != CHECKSUMS]
    (folder / CHECKSUMS).write_text("\n".join(lines) + "\n")


def folder_problem(folder: Path, records: Sequence[str]) -> str | None:
    """None when a folder of synthetic records is whole (each record's .hea, .dat and .atr there, every file of
    its CHECKSUMS present and intact), else why not."""
    if not folder.is_dir():
        return "missing"
    try:
        listed = dict(line.split("  ", 1)[::-1] for line in
                      (folder / CHECKSUMS).read_text(encoding="utf-8").splitlines() if line)
    except (OSError, ValueError, UnicodeDecodeError):
        return "no readable CHECKSUMS file"
    missing = [r for r in records if not all((folder / f"{r}.{e}").is_file() for e in ("hea", "dat", "atr"))]
    if missing:
        return f"record {missing[0]} missing"
    for name, digest in listed.items():
        try:
            if file_digest(folder / name) != digest:
                return f"{name} does not match its checksum"
        except OSError:
            return f"{name} missing"
    return None


def discard(folder: Path) -> None:
    """Move a broken cache folder out of the way (a rename is atomic), then delete it."""
    import shutil

    trash = temporary_name(folder.parent)
    try:
        os.replace(folder, trash)
    except OSError:
        return
    shutil.rmtree(trash, ignore_errors=True)


def say(message: str) -> None:
    """One line on stderr about something the library repaired by itself."""
    print(f"ecglib: {message}", file=sys.stderr, flush=True)


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """Where prepared beats and synthetic records live: ``cache_dir``, $ECGLIB_CACHE, or ~/.cache/ecglib."""
    if cache_dir is not None:
        return Path(cache_dir)
    return Path(os.environ.get("ECGLIB_CACHE", Path.home() / ".cache" / "ecglib"))


