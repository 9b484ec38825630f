"""TwiML as Twilio reads it: a document parsed into verbs, relative URLs resolved, durations.

Used by the Twilio stand-in (:mod:`ivr.telephony.standin`), which executes the verbs. A
document Twilio would refuse (not XML, root not ``<Response>``, an unknown verb) raises
:class:`TwimlError`; Twilio answers such a document with "an application error has
occurred" and hangs up, and so does the stand-in.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from urllib.parse import urljoin

# Voice TwiML verbs Twilio accepts at the top level of <Response>.
VERBS = frozenset({"Say", "Play", "Pause", "Connect", "Dial", "Enqueue", "Redirect", "Hangup", "Reject",
                   "Leave", "Gather", "Record", "Start", "Stop", "Refer", "Pay", "Sms", "Echo", "Prompt"})
# Verbs the stand-in executes; the rest are recorded as errors and skipped.
EXECUTED = frozenset({"Say", "Play", "Pause", "Connect", "Dial", "Enqueue", "Redirect", "Hangup", "Reject", "Leave"})
# What Twilio allows inside an <Enqueue waitUrl> document.
WAIT_VERBS = frozenset({"Say", "Play", "Pause", "Hangup", "Redirect", "Leave", "Gather"})

SAY_CHARS_PER_S = 14.0  # rough text-to-speech pace, so replays at speed 1 feel like a call
PLAY_S = 2.0  # an audio file's length is unknown without fetching it


class TwimlError(ValueError):
    """A TwiML document Twilio would refuse."""


@dataclass
class Verb:
    name: str
    attrs: dict[str, str] = field(default_factory=dict)
    text: str = ""
    children: list["Verb"] = field(default_factory=list)

    def to_dict(self) -> dict:
        out: dict = {"name": self.name, "attrs": dict(self.attrs)}
        if self.text:
            out["text"] = self.text
        if self.children:
            out["children"] = [c.to_dict() for c in self.children]
        return out

    def __str__(self) -> str:
        attrs = " ".join(f'{k}="{v}"' for k, v in self.attrs.items())
        inner = self.text or "".join(str(c) for c in self.children)
        head = f"<{self.name}{' ' + attrs if attrs else ''}"
        return f"{head}>{inner}</{self.name}>" if inner else head + "/>"


def _verb(el: ET.Element) -> Verb:
    return Verb(name=el.tag, attrs=dict(el.attrib), text=(el.text or "").strip(),
                children=[_verb(child) for child in el])


def parse(body: str | bytes) -> list[Verb]:
    """A TwiML document → its top-level verbs, in order."""
    if isinstance(body, bytes):
        try:
            body = body.decode("utf-8")
        except UnicodeDecodeError:
            raise TwimlError("TwiML is not UTF-8") from None
    body = body.strip()
    if not body:
        raise TwimlError("empty response where TwiML was expected")
    try:
        root = ET.fromstring(body)
    except ET.ParseError as exc:
        raise TwimlError(f"TwiML is not well-formed XML: {exc}") from None
    if root.tag != "Response":
        raise TwimlError(f"TwiML root element must be <Response>, found <{root.tag}>")
    verbs = [_verb(el) for el in root]
    unknown = [v.name for v in verbs if v.name not in VERBS]
    if unknown:
        raise TwimlError(f"unknown TwiML verb(s): {', '.join(unknown)}")
    return verbs


def resolve(document_url: str, url: str | None) -> str | None:
    """An absolute or relative URL in TwiML, made absolute against the document's URL."""
    if url is None or not url.strip():
        return None
    return urljoin(document_url, url.strip())


def method(verb: Verb, attr: str = "method") -> str:
    value = verb.attrs.get(attr, "POST").upper()
    return value if value in ("GET", "POST") else "POST"


def number(value: str | None, default: float) -> float:
    try:
        return float(value) if value not in (None, "") else default
    except ValueError:
        return default


def say_seconds(text: str, loops: int = 1) -> float:
    return max(0.5, len(text) / SAY_CHARS_PER_S) * max(1, loops)


def pause_seconds(verb: Verb) -> float:
    return max(0.0, number(verb.attrs.get("length"), 1.0))


def dial_targets(dial: Verb) -> list[tuple[str, Verb | None]]:
    """The parties a <Dial> rings: ("client:alice" | "sip:..." | "+E164" | "queue:NAME", noun)."""
    targets: list[tuple[str, Verb | None]] = []
    for noun in dial.children:
        if noun.name == "Client":
            identity = noun.text or next((c.text for c in noun.children if c.name == "Identity"), "")
            targets.append((f"client:{identity}", noun))
        elif noun.name in ("Number", "Sip"):
            targets.append((noun.text, noun))
        elif noun.name == "Queue":
            targets.append((f"queue:{noun.text}", noun))
        elif noun.name == "Conference":
            targets.append((f"conference:{noun.text}", noun))
    if not targets and dial.text:
        targets.append((dial.text, None))  # <Dial>+15551234567</Dial>
    return targets
