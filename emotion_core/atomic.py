"""Files written whole or not at all: the content goes to a temp file beside the target (same
file system), which is then renamed over the target or hard-linked to a name that must be
new. Readers never see half a file, an interrupted write leaves nothing, and a name that is
claimed by ``link_new`` is never taken from a file that already has it."""

from __future__ import annotations

import errno
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

# os.link errors that mean "this file system has no hard links", not "the name is taken"
NO_HARD_LINKS = {errno.EPERM, errno.EXDEV, errno.EMLINK, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS}


@contextmanager
def temp_beside(path: str | os.PathLike) -> Iterator[Path]:
    """An empty temp file next to ``path``; deleted on exit unless it was renamed away."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@contextmanager
def all_or_nothing(created: list[Path], failed: Callable[[], str]) -> Iterator[None]:
    """A group of files written whole or not at all: if the block fails (full disk, read-only
    folder, interrupt), the files it appended to ``created`` are removed, and an ``OSError`` is
    raised again as "cannot <failed()>: <reason>" so the message names what was being written."""
    try:
        yield
    except BaseException as exc:
        for path in created:
            Path(path).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise OSError(f"cannot {failed()}: {exc}") from exc
        raise


def link_new(tmp: str | os.PathLike, path: str | os.PathLike) -> None:
    """Give the finished ``tmp`` the name ``path``, which must be free (``FileExistsError``).
    Without hard links the name is claimed exclusively first, then the file renamed onto it."""
    try:
        os.link(tmp, path)
    except OSError as exc:  # FileExistsError (EEXIST) included: re-raised
        if exc.errno not in NO_HARD_LINKS:
            raise
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        os.replace(tmp, path)
