"""Compressed corpora: gzip, bzip2 and xz files read as the bytes they hold.

The format is told by the file's first bytes (its magic number), not by its name, so a
`corpus.txt` that is really gzip is read right and a `notes.gz` that is plain text is read
as text. Files are decompressed as a stream, piece by piece, so a compressed corpus costs
no more memory than the plain one; stdin, which is read whole anyway, is decompressed whole.
"""
from __future__ import annotations

from typing import Iterator, Optional

from .errors import CharRNNError

# bzip2's "BZh" is followed by the block size digit and then the 48-bit magic of the first
# block (pi) or of the end of the stream (sqrt(pi)): ten bytes no text file starts with.
_BZ2_BLOCKS = (bytes.fromhex("314159265359"), bytes.fromhex("177245385090"))
SNIFF_BYTES = 10


def sniff(head: bytes) -> Optional[str]:
    """'gzip', 'bzip2' or 'xz' if `head` (a file's first bytes) starts such a stream, else None."""
    if head[:3] == b"\x1f\x8b\x08":  # gzip with deflate, the only method defined
        return "gzip"
    if head[:6] == b"\xfd7zXZ\x00":
        return "xz"
    if head[:3] == b"BZh" and head[3:4] in b"123456789" and head[4:10] in _BZ2_BLOCKS:
        return "bzip2"
    return None


def read_chunks(path: str, size: int) -> Iterator[bytes]:
    """Yield the bytes of `path`, decompressed if it is gzip, bzip2 or xz, `size` at a time.

    Damage in a compressed file is one CharRNNError naming the file and its format; the
    plain file's errors (missing, a directory, no permission) are left to the caller.
    """
    with open(path, "rb") as raw:
        fmt = sniff(raw.peek(SNIFF_BYTES)[:SNIFF_BYTES])
        fh = _decompressor(fmt, raw) if fmt else raw
        damage = _damage() if fmt else ()
        try:
            while True:
                try:
                    chunk = fh.read(size)
                except damage as exc:
                    raise CharRNNError(f"{path} is not a readable {fmt} file: {_reason(exc)}") from None
                if not chunk:
                    return
                yield chunk
        finally:
            fh.close()  # a decompressor leaves `raw` open; the with-block closes it


def decompress(data: bytes, name: str) -> bytes:
    """`data` itself, or what it decompresses to if it is gzip, bzip2 or xz (for stdin)."""
    fmt = sniff(data[:SNIFF_BYTES])
    if fmt is None:
        return data
    import bz2
    import gzip
    import lzma

    fn = {"gzip": gzip.decompress, "bzip2": bz2.decompress, "xz": lzma.decompress}[fmt]
    try:
        return fn(data)
    except _damage() as exc:
        raise CharRNNError(f"{name} is not a readable {fmt} stream: {_reason(exc)}") from None


def _decompressor(fmt: str, raw):
    if fmt == "gzip":
        import gzip

        return gzip.GzipFile(fileobj=raw, mode="rb")
    if fmt == "bzip2":
        import bz2

        return bz2.BZ2File(raw, "rb")
    import lzma

    return lzma.LZMAFile(raw, "rb")


def _damage() -> tuple:
    import lzma
    import zlib

    # gzip raises BadGzipFile (an OSError), zlib.error or EOFError; bz2 OSError or EOFError;
    # lzma LZMAError or EOFError.
    return (EOFError, OSError, zlib.error, lzma.LZMAError)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, EOFError):
        return "it ends before its compressed stream does (truncated?)"
    text = str(exc) or type(exc).__name__
    return text[0].lower() + text[1:]
