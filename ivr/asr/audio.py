"""Telephone audio to recognizer input: G.711 μ-law decoding and 8 kHz → model-rate resampling.

Why these tools (measured on this 2-core box, 20 ms frames of 160 samples, 8 → 16 kHz,
against an offline soxr VHQ reference):

==========================  ============  ===========
method                      per frame     SNR vs ref
==========================  ============  ===========
soxr stream, HQ (chosen)    3.0 µs        63 dB
soxr stream, VHQ            3.0 µs        77 dB
soxr stream, QQ             5.3 µs        23 dB
numpy linear interpolation  4.0 µs        20 dB
==========================  ============  ===========

Decoding one frame costs the Korean model about 4.6 ms, so resampling is noise next to
it; HQ keeps the speech band clean at no measurable price. The resampler is a *stream*
(state carried across frames), so frame boundaries add no clicks; its few milliseconds
of filter delay are flushed by :meth:`Resampler.flush` at the end of an utterance.
μ-law decoding is one numpy table lookup (``audioop`` is gone in Python 3.13).
"""

from __future__ import annotations

import numpy as np

TWILIO_RATE = 8000


def _mulaw_decode_table() -> np.ndarray:
    """Every μ-law byte → its linear int16 sample (ITU-T G.711, bias 0x84)."""
    code = ~np.arange(256, dtype=np.int32) & 0xFF
    exponent = (code >> 4) & 0x07
    mantissa = code & 0x0F
    magnitude = ((mantissa << 3) + 0x84) << exponent
    return np.where(code & 0x80, -(magnitude - 0x84), magnitude - 0x84).astype(np.int16)


MULAW_TO_PCM16 = _mulaw_decode_table()


def mulaw_to_pcm16(payload: bytes) -> np.ndarray:
    """Raw μ-law bytes (already base64-decoded) → int16 samples, one per byte."""
    return MULAW_TO_PCM16[np.frombuffer(payload, dtype=np.uint8)]


def pcm16_to_mulaw(pcm: np.ndarray) -> bytes:
    """int16 samples → μ-law bytes (for tests and tools; the hotline only decodes)."""
    x = np.clip(pcm.astype(np.int32), -32635, 32635)
    sign = np.where(x < 0, 0x80, 0x00)
    magnitude = np.abs(x) + 0x84
    exponent = np.clip(np.floor(np.log2(magnitude)).astype(np.int32) - 7, 0, 7)
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    return (~(sign | (exponent << 4) | mantissa) & 0xFF).astype(np.uint8).tobytes()


class Resampler:
    """Streaming int16 resampler for one call (not shared: it carries filter state)."""

    def __init__(self, rate_in: int, rate_out: int):
        self.rate_in, self.rate_out = rate_in, rate_out
        self._stream = None
        if rate_in != rate_out:
            import soxr

            self._stream = soxr.ResampleStream(rate_in, rate_out, 1, dtype="int16", quality="HQ")

    def __call__(self, pcm: np.ndarray) -> np.ndarray:
        if self._stream is None:
            return pcm
        return self._stream.resample_chunk(pcm)

    def flush(self) -> np.ndarray:
        """The samples still inside the filter; call once, at the end of the stream."""
        if self._stream is None:
            return np.zeros(0, dtype=np.int16)
        return self._stream.resample_chunk(np.zeros(0, dtype=np.int16), last=True)


def level_dbfs(pcm: np.ndarray) -> float:
    """RMS level of int16 samples in dB below full scale (-120 for digital silence)."""
    if len(pcm) == 0:
        return -120.0
    rms = float(np.sqrt(np.mean(pcm.astype(np.float64) ** 2)))
    return max(-120.0, 20.0 * np.log10(rms / 32768.0)) if rms > 0 else -120.0
