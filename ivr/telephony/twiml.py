"""TwiML the hotline answers with, built with the twilio library (never by hand)."""

from __future__ import annotations

from twilio.twiml.voice_response import Connect, Dial, VoiceResponse

from ivr.config import Hotline


def _say(resp: VoiceResponse, hotline: Hotline, text: str) -> None:
    if text:
        resp.say(text, voice=hotline.say_voice, language=hotline.say_language)


def listen(hotline: Hotline, prompt: str, stream_url: str, action_url: str, params: dict[str, str]) -> str:
    """Say ``prompt`` and open the Media Stream; Twilio requests ``action_url`` when we close it.

    Twilio plays the <Say> before the stream opens, so prompts are kept short; the
    recognizer then listens from the stream's first frame.
    """
    resp = VoiceResponse()
    _say(resp, hotline, prompt)
    connect = Connect(action=action_url, method="POST")
    stream = connect.stream(url=stream_url)
    for name, value in params.items():
        stream.parameter(name=name, value=value)
    resp.append(connect)
    return str(resp)


def dial(hotline: Hotline, say: str, address: str, action_url: str, answer_url: str, timeout_s: int,
         caller_id: str | None = None) -> str:
    """Connect the caller to an agent at ``address`` (client:NAME, sip:..., or +E164)."""
    resp = VoiceResponse()
    _say(resp, hotline, say)
    d = Dial(action=action_url, method="POST", timeout=timeout_s, **({"caller_id": caller_id} if caller_id else {}))
    if address.startswith("client:"):
        d.client(address.removeprefix("client:"), url=answer_url, method="POST")
    elif address.startswith("sip:"):
        d.sip(address, url=answer_url, method="POST")
    else:
        d.number(address, url=answer_url, method="POST")
    resp.append(d)
    return str(resp)


def enqueue(hotline: Hotline, say: str, queue: str, wait_url: str, action_url: str) -> str:
    resp = VoiceResponse()
    _say(resp, hotline, say)
    resp.enqueue(queue, wait_url=wait_url, wait_url_method="POST", action=action_url, method="POST")
    return str(resp)


def wait_message(hotline: Hotline, say: str, pause_s: int) -> str:
    """What a queued caller hears between checks; Twilio re-requests the wait URL after it."""
    resp = VoiceResponse()
    _say(resp, hotline, say)
    resp.pause(length=pause_s)
    return str(resp)


def leave() -> str:
    resp = VoiceResponse()
    resp.leave()
    return str(resp)


def transfer(hotline: Hotline | None, say: str, number: str) -> str:
    """Straight to a human number: the fallback that always works."""
    resp = VoiceResponse()
    if hotline is not None:
        _say(resp, hotline, say)
    resp.dial(number)
    return str(resp)


def say_and_hangup(hotline: Hotline, say: str) -> str:
    resp = VoiceResponse()
    _say(resp, hotline, say)
    resp.hangup()
    return str(resp)


def agent_whisper(hotline: Hotline, say: str) -> str:
    """Played to the agent when they pick up, before the caller is bridged."""
    resp = VoiceResponse()
    _say(resp, hotline, say)
    return str(resp)


def empty() -> str:
    return str(VoiceResponse())
