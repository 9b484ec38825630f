"""A WAV file as a caller's line: 8 kHz μ-law in 20 ms frames of 160 bytes, as Twilio sends.

Reads PCM (8/16/24/32-bit integer, 32/64-bit float), μ-law and A-law WAV files at any
sample rate and channel count; mixes down to mono, resamples to 8 kHz with soxr, and
encodes μ-law with a numpy lookup table (``audioop`` is gone in Python 3.13). An 8 kHz
mono μ-law file passes through byte for byte, so a recorded call replays exactly.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Iterator

import numpy as np

RATE = 8000
FRAME_MS = 20
FRAME_BYTES = RATE * FRAME_MS // 1000  # 160 μ-law bytes = 20 ms
SILENCE_BYTE = 0xFF  # μ-law code for a zero sample
SILENCE_FRAME = bytes([SILENCE_BYTE]) * FRAME_BYTES

_PCM, _FLOAT, _ALAW, _MULAW, _EXTENSIBLE = 1, 3, 6, 7, 0xFFFE
HOW_TO_FIX = "convert it with: sox INPUT -r 8000 -c 1 -e mu-law OUTPUT.wav (or -e signed -b 16)"


class WavError(ValueError):
    """A file that cannot be played as a caller's audio; the message says how to fix it."""


def _mulaw_encode_table() -> np.ndarray:
    """int16 sample (offset by 32768) → G.711 μ-law byte, for every possible sample.

    G.711 works on 14-bit magnitudes (the sample shifted right by two), as CPython's
    old ``audioop.lin2ulaw`` did; this table matches it byte for byte.
    """
    pcm = np.arange(-32768, 32768, dtype=np.int32) >> 2
    mask = np.where(pcm < 0, 0x7F, 0xFF)
    mag = np.minimum(np.abs(pcm), 8159) + 0x21
    segment = np.searchsorted(np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF]), mag)
    code = np.where(segment >= 8, 0x7F, (segment << 4) | ((mag >> (segment + 1)) & 0x0F))
    return ((code ^ mask) & 0xFF).astype(np.uint8)


def _mulaw_decode_table() -> np.ndarray:
    code = ~np.arange(256, dtype=np.int32) & 0xFF
    exponent = (code >> 4) & 0x07
    mantissa = code & 0x0F
    mag = ((mantissa << 3) + 0x84) << exponent
    return np.where(code & 0x80, -(mag - 0x84), mag - 0x84).astype(np.int16)


def _alaw_decode_table() -> np.ndarray:
    code = np.arange(256, dtype=np.int32) ^ 0x55
    exponent = (code >> 4) & 0x07
    mantissa = code & 0x0F
    mag = np.where(exponent == 0, (mantissa << 4) + 8, ((mantissa << 4) + 0x108) << np.maximum(exponent - 1, 0))
    return np.where(code & 0x80, mag, -mag).astype(np.int16)


MULAW_ENCODE = _mulaw_encode_table()
MULAW_DECODE = _mulaw_decode_table()
ALAW_DECODE = _alaw_decode_table()


def encode_mulaw(pcm16: np.ndarray) -> bytes:
    """16-bit linear samples → μ-law bytes."""
    return MULAW_ENCODE[pcm16.astype(np.int32) + 32768].tobytes()


def decode_mulaw(data: bytes) -> np.ndarray:
    """μ-law bytes → 16-bit linear samples."""
    return MULAW_DECODE[np.frombuffer(data, dtype=np.uint8)]


def _chunks(blob: bytes, name: str) -> dict[bytes, bytes]:
    if len(blob) < 12 or blob[:4] not in (b"RIFF", b"RIFX") or blob[8:12] != b"WAVE":
        raise WavError(f"{name}: not a WAV file (no RIFF/WAVE header); {HOW_TO_FIX}")
    if blob[:4] == b"RIFX":
        raise WavError(f"{name}: big-endian (RIFX) WAV is not supported; {HOW_TO_FIX}")
    chunks: dict[bytes, bytes] = {}
    pos = 12
    while pos + 8 <= len(blob):
        cid, size = blob[pos:pos + 4], struct.unpack_from("<I", blob, pos + 4)[0]
        body = blob[pos + 8:pos + 8 + size]
        chunks.setdefault(cid, body)
        if cid == b"data" and len(body) < size:
            break  # a truncated recording: play what is there
        pos += 8 + size + (size & 1)  # chunks are word-aligned
    if b"fmt " not in chunks or len(chunks[b"fmt "]) < 16:
        raise WavError(f"{name}: WAV file has no valid 'fmt ' chunk (corrupt?); {HOW_TO_FIX}")
    if b"data" not in chunks:
        raise WavError(f"{name}: WAV file has no 'data' chunk (corrupt or truncated?); {HOW_TO_FIX}")
    return chunks


def _samples(fmt: int, bits: int, data: bytes, name: str) -> np.ndarray:
    """Interleaved samples as float32 in [-1, 1]."""
    if fmt == _MULAW and bits == 8:
        return decode_mulaw(data).astype(np.float32) / 32768.0
    if fmt == _ALAW and bits == 8:
        return ALAW_DECODE[np.frombuffer(data, dtype=np.uint8)].astype(np.float32) / 32768.0
    if fmt == _FLOAT and bits in (32, 64):
        usable = len(data) - len(data) % (bits // 8)
        return np.frombuffer(data[:usable], dtype="<f4" if bits == 32 else "<f8").astype(np.float32)
    if fmt == _PCM and bits == 8:
        return (np.frombuffer(data, dtype=np.uint8).astype(np.float32) - 128.0) / 128.0
    if fmt == _PCM and bits in (16, 32):
        usable = len(data) - len(data) % (bits // 8)
        ints = np.frombuffer(data[:usable], dtype="<i2" if bits == 16 else "<i4")
        return ints.astype(np.float32) / float(2 ** (bits - 1))
    if fmt == _PCM and bits == 24:
        raw = np.frombuffer(data[:len(data) - len(data) % 3], dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        ints = raw[:, 0] | (raw[:, 1] << 8) | (raw[:, 2] << 16)
        ints = np.where(ints & 0x800000, ints - (1 << 24), ints)
        return ints.astype(np.float32) / float(1 << 23)
    raise WavError(f"{name}: unsupported WAV encoding (format {fmt:#x}, {bits} bits); {HOW_TO_FIX}")


def mulaw_from_wav_bytes(blob: bytes, name: str = "audio") -> bytes:
    """A whole WAV file's bytes → 8 kHz mono μ-law bytes."""
    chunks = _chunks(blob, name)
    fmt, channels, rate, _byte_rate, _align, bits = struct.unpack_from("<HHIIHH", chunks[b"fmt "])
    if fmt == _EXTENSIBLE:
        ext = chunks[b"fmt "]
        if len(ext) < 26:
            raise WavError(f"{name}: WAVE_FORMAT_EXTENSIBLE header is truncated; {HOW_TO_FIX}")
        fmt = struct.unpack_from("<H", ext, 24)[0]  # first two bytes of the sub-format GUID
    if channels < 1 or rate < 1000 or rate > 384000:
        raise WavError(f"{name}: implausible WAV header ({channels} channels at {rate} Hz); {HOW_TO_FIX}")
    data = chunks[b"data"]
    if fmt == _MULAW and bits == 8 and channels == 1 and rate == RATE:
        return bytes(data)  # already the line format: replay exactly what was recorded
    samples = _samples(fmt, bits, data, name)
    samples = samples[:len(samples) - len(samples) % channels].reshape(-1, channels).mean(axis=1)
    if rate != RATE and len(samples):
        import soxr

        samples = soxr.resample(samples, rate, RATE, quality="HQ")
    pcm = np.clip(np.round(samples * 32767.0), -32768, 32767).astype(np.int16)
    return encode_mulaw(pcm)


def read_wav(path: str | Path) -> bytes:
    """The caller's audio in a WAV file as 8 kHz mono μ-law bytes; raises :class:`WavError`."""
    path = Path(path)
    try:
        blob = path.read_bytes()
    except OSError as exc:
        raise WavError(f"{path}: cannot read the audio file ({exc.strerror or exc})") from None
    return mulaw_from_wav_bytes(blob, str(path))


def frames(mulaw: bytes, size: int = FRAME_BYTES) -> Iterator[bytes]:
    """Fixed-size frames; the last one is padded with μ-law silence."""
    for start in range(0, len(mulaw), size):
        frame = mulaw[start:start + size]
        yield frame if len(frame) == size else frame + bytes([SILENCE_BYTE]) * (size - len(frame))


def write_wav(path: str | Path, mulaw: bytes) -> None:
    """Write 8 kHz mono μ-law bytes as a μ-law WAV (format 7) that :func:`read_wav` replays exactly."""
    fmt = struct.pack("<HHIIHHH", _MULAW, 1, RATE, RATE, 1, 8, 0)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    body += b"fact" + struct.pack("<II", 4, len(mulaw))
    body += b"data" + struct.pack("<I", len(mulaw)) + mulaw + (b"\0" if len(mulaw) & 1 else b"")
    Path(path).write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
