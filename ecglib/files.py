"""Atomic file writes: a reader sees the old file or the whole new one, never half of one.

Every file ecglib writes (beats, checkpoints, metrics, annotations, reports) goes through :func:`atomic_path`: the
content is written to a temporary file beside the target and moved over it in one ``os.replace``. The temporary
file carries the writer's process id, so that one left behind by a killed process is recognised and removed by
the next writer in that folder (:func:`clear_stale_temporaries`), and on any failure the temporary is removed and
the error names the user's path, never the temporary one.
"""
from __future__ import annotations

import errno
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import InputError

TMP_PREFIX = ".ecglib-tmp-"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def clear_stale_temporaries(folder: str | os.PathLike) -> int:
    """Remove the temporary files of writers that no longer run from ``folder``; returns how many."""
    removed = 0
    try:
        entries = list(Path(folder).glob(f"{TMP_PREFIX}*"))
    except OSError:
        return 0
    for entry in entries:
        try:
            pid = int(entry.name[len(TMP_PREFIX):].split("-", 1)[0])
        except ValueError:
            continue
        if pid != os.getpid() and not _pid_alive(pid):
            try:
                if entry.is_dir():
                    import shutil

                    shutil.rmtree(entry)
                else:
                    entry.unlink()
                removed += 1
            except OSError:
                pass
    return removed


def temporary_name(folder: Path) -> Path:
    """A fresh temporary path in ``folder`` that names this process (short: a long target name stays legal)."""
    return folder / f"{TMP_PREFIX}{os.getpid()}-{secrets.token_hex(4)}"


def _os_problem(exc: OSError, where: Path | None = None) -> str:
    if exc.errno == errno.ENOSPC:
        return "no space left on the device"
    if exc.errno == errno.EDQUOT:
        return "disk quota exceeded"
    if exc.errno is None and where is not None and _disk_full(where):
        # numpy's tofile (wfdb writes signals with it) reports a short write without an errno
        return "no space left on the device"
    return exc.strerror or str(exc)


def _disk_full(folder: Path) -> bool:
    try:
        st = os.statvfs(folder)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < 64 * 1024


def _temporary_beside(path: Path) -> Path:
    """A temporary name in ``path``'s folder (created), after clearing what killed writers left there."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{path}: cannot create its folder ({_os_problem(exc)})") from None
    clear_stale_temporaries(path.parent)
    return temporary_name(path.parent)


@contextmanager
def _removed_on_failure(path: Path, tmp: Path) -> Iterator[None]:
    """Remove ``tmp`` when the block fails; an OSError (a full disk, a folder in the way) becomes an InputError
    naming the user's ``path``, never the temporary one."""
    try:
        yield
    except OSError as exc:
        problem = _os_problem(exc, path.parent)  # before the temporary goes and frees its space
        _remove(tmp)
        raise InputError(f"{path}: cannot write ({problem})") from None
    except BaseException:
        _remove(tmp)
        raise


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path to write ``path``'s new content to; on success it replaces ``path``.

    The parent folder is created. On any failure, interruptions included, the temporary file is removed and
    ``path`` is left as it was; an OSError (a full disk, a folder in the way) becomes an InputError naming ``path``.
    """
    path = Path(path)
    tmp = _temporary_beside(path)
    with _removed_on_failure(path, tmp):
        yield tmp
        if path.is_dir():
            raise InputError(f"{path}: a folder is in the way of this output file")
        # New files get the ordinary permissions (mkstemp-style 0600 would surprise a user sharing results).
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)


def _remove(tmp: Path) -> None:
    try:
        if tmp.is_dir():
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
    except OSError:
        pass


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write a text file atomically (UTF-8)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


# ------------------------------------------------------------------------------------------------- checksums
DIGEST_BYTES = 16


def file_digest(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """BLAKE2b (128-bit) of a file's bytes, hex: fast enough to hash the whole MIT-BIH database (100 MB) on
    every load, and a stronger key than size and modification time, which an edit in place can keep."""
    import hashlib

    h = hashlib.blake2b(digest_size=DIGEST_BYTES)
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


@contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a fresh temporary folder beside ``path``; on success it becomes ``path`` in one rename.

    If ``path`` appeared meanwhile (another process built it first), ours is dropped and theirs kept. On any
    failure the temporary folder is removed and an OSError becomes an InputError naming ``path``.
    """
    path = Path(path)
    tmp = _temporary_beside(path)
    with _removed_on_failure(path, tmp):
        tmp.mkdir()
        yield tmp
        try:
            os.replace(tmp, path)
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
            _remove(tmp)  # another writer won the race
