"""A file's stamp: what changes when the file is edited or replaced (cheap: one stat call).

The hot reloads (routing rules and roster, the intent model and its data) compare stamps to
decide whether to read a file again. The inode is part of it, so a file replaced by rename
(``ivr intents train`` saves that way, as do most editors) counts as changed even when its
modification time and size happen to match; the status-change time too, so a file made
readable again (``chmod``) is looked at again.
"""

from __future__ import annotations

from pathlib import Path


def stamp(path: Path) -> tuple[int, int, int, int] | None:
    """(inode, mtime in ns, ctime in ns, size), or None when the file cannot be looked at."""
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_ctime_ns, st.st_size)
