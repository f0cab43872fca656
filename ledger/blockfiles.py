"""Append-only block files beside the chain store's LevelDB index.

A block never changes once committed, yet it is most of the bytes the chain store
writes (about 80% at 2,000 ballots a second), and an LSM tree rewrites every byte it
holds at each level it compacts into. So block encodings go to numbered segment files
(``blocks-000000.dat``, ...) in the store's directory, written once, and LevelDB keeps
only each block's :class:`BlockLocation` (segment, offset, length, CRC-32), in the
block's own synced batch with the rest of its effects.

Order of a commit: append the block, ``fdatasync`` the segment (and the directory when
a segment was just created), and only then write the synced batch naming it. A crash
therefore leaves at most bytes past the last committed block's end, never a location
without its bytes; :meth:`BlockFiles.open_at` cuts those bytes off when the store opens.
Every read checks the length and the CRC, so a damaged block is refused as
:class:`~ledger.errors.StoreCorrupt`, never served. LevelDB ignores files whose names it
does not know, so the segments live in the LevelDB directory and move with it.
"""

from __future__ import annotations

import contextlib
import os
import re
import struct
import threading
import zlib
from dataclasses import dataclass
from pathlib import Path

from ledger.errors import StoreCorrupt, StoreError
from ledger.files import fsync_path

#: A segment is closed once the next block would take it past this size (a block larger
#: than a segment gets a segment of its own).
SEGMENT_BYTES = 256 << 20
_SEGMENT_NAME = "blocks-{:06d}.dat"
_SEGMENT_PATTERN = re.compile(r"blocks-(\d{6})\.dat")
_LOCATION = struct.Struct(">IQII")


@dataclass(frozen=True)
class BlockLocation:
    """Where a block's encoding is: segment number, byte offset, length and CRC-32."""

    segment: int
    offset: int
    length: int
    crc: int

    @property
    def end(self) -> int:
        return self.offset + self.length

    def encode(self) -> bytes:
        return _LOCATION.pack(self.segment, self.offset, self.length, self.crc)

    @classmethod
    def decode(cls, raw: bytes, what: str) -> BlockLocation:
        if len(raw) != _LOCATION.size:
            raise StoreCorrupt(f"the location of {what} is {len(raw)} bytes, not {_LOCATION.size}")
        segment, offset, length, crc = _LOCATION.unpack(raw)
        return cls(int(segment), int(offset), int(length), int(crc))


def segment_name(segment: int) -> str:
    return _SEGMENT_NAME.format(segment)


def segment_numbers(directory: Path) -> list[int]:
    """The segment numbers present in ``directory``, ascending."""
    found = (_SEGMENT_PATTERN.fullmatch(entry.name) for entry in os.scandir(directory))
    return sorted(int(m.group(1)) for m in found if m is not None)


class BlockFiles:
    """The segments of one store: one writer (the committing thread), readers on any thread."""

    def __init__(self, directory: Path, *, segment_bytes: int = SEGMENT_BYTES) -> None:
        self.directory = directory
        self.segment_bytes = segment_bytes
        self._segment = 0  # the segment appends go to
        self._end = 0  # its length: the end of the last block appended
        self._write_fd: int | None = None
        self._new_segment = False  # created since the last sync: the directory entry needs one too
        self._read_fds: dict[int, int] = {}
        self._lock = threading.Lock()

    # --- opening ----------------------------------------------------------------------
    def open_at(self, last: BlockLocation | None) -> None:
        """Make the files end where the last committed block ends (``None``: no block is in
        a file yet): bytes after it, left by a crash between an append and its batch, are
        cut off and later segments removed. Refused when a committed block's bytes are gone."""
        segment, end = (0, 0) if last is None else (last.segment, last.end)
        removed = False
        for number in segment_numbers(self.directory):
            if number > segment or (last is None and number == segment):
                os.unlink(self._path(number))
                removed = True
        if removed:
            fsync_path(self.directory)
        path = self._path(segment)
        if last is not None:
            size = path.stat().st_size if path.exists() else -1
            if size < end:
                raise StoreCorrupt(
                    f"the chain store's block file {path} is damaged and is not used "
                    f"({'missing' if size < 0 else f'{size} bytes'}; the chain's blocks need {end})")
            if size > end:
                os.truncate(path, end)
                fsync_path(path)
        self._segment, self._end = segment, end

    # --- writing ----------------------------------------------------------------------
    def append(self, data: bytes) -> BlockLocation:
        """Write ``data`` after the last block (not yet synced: see :meth:`sync`)."""
        if self._end > 0 and self._end + len(data) > self.segment_bytes:
            self._close_writer()
            self._segment, self._end = self._segment + 1, 0
        fd = self._writer()
        written = os.pwrite(fd, data, self._end)
        if written != len(data):  # a full disk can write part of it
            raise StoreError(f"wrote {written} of a block's {len(data)} bytes to {self._path(self._segment)}")
        location = BlockLocation(self._segment, self._end, len(data), zlib.crc32(data))
        self._end = location.end
        return location

    def sync(self) -> None:
        """Make every appended byte durable (and a new segment's directory entry)."""
        if self._write_fd is not None:
            os.fdatasync(self._write_fd)
        if self._new_segment:
            fsync_path(self.directory)
            self._new_segment = False

    def discard(self, location: BlockLocation) -> None:
        """Forget an append whose batch did not commit: the next block goes where it went."""
        self._segment, self._end = location.segment, location.offset
        if self._write_fd is not None:
            with contextlib.suppress(OSError):  # cut off at the next open otherwise
                os.ftruncate(self._write_fd, location.offset)

    def _writer(self) -> int:
        if self._write_fd is None:
            path = self._path(self._segment)
            self._new_segment = not path.exists()
            self._write_fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
        return self._write_fd

    def _close_writer(self) -> None:
        if self._write_fd is not None:
            os.fdatasync(self._write_fd)
            os.close(self._write_fd)
            self._write_fd = None

    # --- reading ----------------------------------------------------------------------
    def read(self, location: BlockLocation, what: str) -> bytes:
        """The bytes at ``location``, their length and CRC checked."""
        try:
            data = os.pread(self._reader(location.segment), location.length, location.offset)
        except OSError as exc:
            raise StoreCorrupt(f"the chain store cannot read {what} from "
                               f"{self._path(location.segment)} ({exc.strerror or exc})") from None
        if len(data) != location.length or zlib.crc32(data) != location.crc:
            raise StoreCorrupt(f"{what} in the chain store's block file {self._path(location.segment)} "
                               f"is damaged and is not used (at byte {location.offset}, {location.length} bytes)")
        return data

    def _reader(self, segment: int) -> int:
        fd = self._read_fds.get(segment)
        if fd is None:
            with self._lock:
                fd = self._read_fds.get(segment)
                if fd is None:
                    fd = self._read_fds[segment] = os.open(self._path(segment), os.O_RDONLY | os.O_CLOEXEC)
        return fd

    # --- backup and closing -------------------------------------------------------------
    def extent(self) -> list[tuple[Path, int]]:
        """Each segment and the length of it that holds blocks, as of now: what a backup
        taken between two commits copies (appends after this do not change the prefix)."""
        out = [(self._path(n), self._path(n).stat().st_size) for n in range(self._segment)]
        if self._end > 0:
            out.append((self._path(self._segment), self._end))
        return out

    def close(self) -> None:
        if self._write_fd is not None:
            os.close(self._write_fd)
            self._write_fd = None
        with self._lock:
            for fd in self._read_fds.values():
                os.close(fd)
            self._read_fds.clear()

    def _path(self, segment: int) -> Path:
        return self.directory / segment_name(segment)
