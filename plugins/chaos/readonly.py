"""Make a kernel's data directory read-only for real, also for a kernel running as root.

Root ignores permission bits, and a read-only bind mount does not stop file handles that are
already open for writing (DuckDB keeps its files open). The immutable attribute does both: with
``FS_IMMUTABLE_FL`` on the directory and on every file in it, no file can be created, renamed or
deleted there and every ``write()`` fails with EPERM, through already-open handles too, whoever
the writer is; the same as a disk that went read-only under a running process. Setting it needs
CAP_LINUX_IMMUTABLE (root) and a file system that keeps the attribute (ext4, xfs, btrfs; tried on
ext4). Without root the runner falls back to removing the write permission bits, which a
non-root kernel honours for every new open (not for handles it already holds).

``chattr -R -i DIR`` undoes it by hand if a run was killed before it could clean up.
"""

from __future__ import annotations

import array
import fcntl
import os
import stat
from pathlib import Path

FS_IOC_GETFLAGS = 0x80086601
FS_IOC_SETFLAGS = 0x40086602
FS_IMMUTABLE_FL = 0x00000010


def _set_flag(path: Path, on: bool) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
    try:
        flags = array.array("i", [0])
        fcntl.ioctl(fd, FS_IOC_GETFLAGS, flags, True)
        new = flags[0] | FS_IMMUTABLE_FL if on else flags[0] & ~FS_IMMUTABLE_FL
        if new != flags[0]:
            flags[0] = new
            fcntl.ioctl(fd, FS_IOC_SETFLAGS, flags, True)
    finally:
        os.close(fd)


def _tree(root: Path) -> list[Path]:
    """Every directory and regular file under ``root``, files before their directory."""
    out: list[Path] = []
    for dirpath, _dirs, files in os.walk(root, topdown=False):
        for name in files:
            path = Path(dirpath) / name
            if stat.S_ISREG(path.lstat().st_mode):
                out.append(path)
        out.append(Path(dirpath))
    return out


class ReadOnlyDir:
    """``make_readonly()`` / ``restore()`` on one directory tree; ``mechanism`` says which way."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.mechanism = ""
        self._modes: dict[Path, int] = {}
        self._flagged: list[Path] = []

    def make_readonly(self) -> str:
        try:
            for path in _tree(self.root):
                _set_flag(path, True)
                self._flagged.append(path)
            self.mechanism = "immutable attribute"
        except OSError as exc:
            self.restore()
            if os.geteuid() == 0:
                raise RuntimeError(
                    f"cannot set the immutable attribute under {self.root} ({exc}); duckdb_readonly needs a "
                    "file system that supports it (ext4, xfs, btrfs) and CAP_LINUX_IMMUTABLE") from None
            for path in _tree(self.root):
                mode = path.lstat().st_mode
                self._modes[path] = stat.S_IMODE(mode)
                path.chmod(stat.S_IMODE(mode) & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
            self.mechanism = "write permission removed (not root)"
        return self.mechanism

    def restore(self) -> None:
        for path in reversed(self._flagged):
            try:
                _set_flag(path, False)
            except OSError:
                pass
        self._flagged.clear()
        for path, mode in self._modes.items():
            try:
                path.chmod(mode)
            except OSError:
                pass
        self._modes.clear()
