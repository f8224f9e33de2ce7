"""Reading the journal's write-ahead log on open: is its tail torn?

SQLite's recovery drops a torn or corrupt tail by itself: a WAL frame counts only if its salts
match the WAL header and its running checksum holds, and only frames up to the last *commit*
frame are replayed (https://www.sqlite.org/fileformat2.html#walformat). A transaction whose
frames a crash cut short was never acknowledged (its COMMIT had not returned), so dropping it
loses nothing a caller was told is durable. SQLite does not say that it dropped anything, so the
journal compares the frames the file holds (:func:`wal_frames`, read before SQLite opens it)
with the frames SQLite replayed: the difference is the torn tail, and it is reported.
"""

from __future__ import annotations

import struct
from pathlib import Path

import msgspec

__all__ = ["WalFrames", "wal_frames"]

_HEADER = 32
_FRAME_HEADER = 24
_MAGICS = (0x377F0682, 0x377F0683)


class WalFrames(msgspec.Struct, frozen=True, kw_only=True):
    """What a WAL file holds of its current generation."""

    frames: int
    """Whole frames carrying the WAL header's salts (the current generation: committed or not);
    frames of an earlier generation that follow them (other salts) are stale and not counted."""
    partial_bytes: int
    """Bytes of a last frame cut short (a write torn at the end of the file)."""
    frame_size: int


def wal_frames(db_path: str | Path) -> WalFrames | None:
    """The WAL of ``db_path`` (``<db>-wal``), or None if there is none or its header is not a WAL
    header (SQLite then ignores the file, so nothing in it was committed). Reads only the frame
    headers: fast on a WAL of any size."""
    wal = Path(f"{db_path}-wal")
    try:
        size = wal.stat().st_size
        with wal.open("rb") as f:
            header = f.read(_HEADER)
            if len(header) < _HEADER:
                return None
            magic, _version, page_size, _ckpt, salt1, salt2, _c0, _c1 = struct.unpack(">8I", header)
            if magic not in _MAGICS or page_size < 512:
                return None
            frame = _FRAME_HEADER + page_size
            frames = 0
            offset = _HEADER
            while offset + _FRAME_HEADER <= size:
                f.seek(offset + 8)
                if struct.unpack(">II", f.read(8)) != (salt1, salt2):
                    break
                if offset + frame > size:
                    return WalFrames(frames=frames, partial_bytes=size - offset, frame_size=frame)
                frames += 1
                offset += frame
    except FileNotFoundError:
        return None
    partial = size - offset if offset < size and size - offset < _FRAME_HEADER else 0
    return WalFrames(frames=frames, partial_bytes=partial, frame_size=frame)
