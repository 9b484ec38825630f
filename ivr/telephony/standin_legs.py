"""The stand-in's long-running verbs: ``<Connect><Stream>``, ``<Dial>`` and ``<Enqueue>``.

Each plays Twilio's documented behaviour for its verb and returns the next document to
fetch (the verb's ``action``), or ``None`` to go on with the current document.

- ``<Connect action>`` is requested when the *server* closes the stream socket; a caller
  who hangs up mid-stream sends ``stop`` and the call just ends (status callback only).
- ``<Dial>`` rings the first target with the next :class:`AgentBehaviour`; an answering
  party first runs the noun's ``url`` TwiML (the whisper), then talks; the ``action``
  gets ``DialCallStatus``, ``DialCallSid``, ``DialCallDuration`` and ``DialBridged``.
- ``<Enqueue waitUrl>`` requests the wait URL (``QueuePosition``, ``QueueSid``,
  ``QueueTime``, ``AvgQueueTime``, ``CurrentQueueSize``, ``MaxQueueSize``), plays it, and
  requests it again when it finishes, until it says ``<Leave/>``; the ``action`` gets
  ``QueueResult`` (``leave``, ``hangup``...), ``QueueSid`` and ``QueueTime``.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from ivr.telephony import streamclient, twiml_exec
from ivr.telephony.calltrace import DialRecord, QueueRecord

if TYPE_CHECKING:
    from ivr.telephony.standin import Next, _Call

MAX_QUEUE_SIZE = 1000  # Twilio's default queue size
MAX_WAIT_POLLS = 2000  # guards an endless zero-length wait document at speed 0


class Legs:
    def __init__(self, call: "_Call"):
        self.call = call

    # --- <Connect><Stream> -----------------------------------------------------
    def connect(self, verb, doc_url: str) -> "Next | None":
        from ivr.telephony.standin import CallEnded, Next, new_sid

        c, t = self.call, self.call.trace
        stream = next((n for n in verb.children if n.name == "Stream"), None)
        if stream is None:
            t.errors.append(f"<Connect> without <Stream> ({', '.join(n.name for n in verb.children) or 'empty'}) "
                            "is not supported by the stand-in")
            raise CallEnded("application error", "error")
        url = stream.attrs.get("url", "")
        if not url:
            t.errors.append("<Stream> without a url attribute")
            raise CallEnded("application error", "error")
        if "?" in url:
            t.errors.append(f"<Stream url={url!r}> has a query string: Twilio refuses it (error 31920); "
                            "pass values with <Parameter>")
        elif not url.startswith("wss://"):
            t.warnings.append(f"<Stream url={url!r}> is not wss://; Twilio requires wss:// in production")
        custom = {p.attrs.get("name", ""): p.attrs.get("value", "") for p in stream.children if p.name == "Parameter"}
        armed = c.enter("listening")
        hangup_after = max(0.0, c.hangup_deadline - c.call_s) if armed and c.hangup_deadline is not None else None
        plan = c.stream_plan(c.next_audio(), hangup_after)
        signature = c.signature("websocket", url, {})  # the URL as written, no parameters
        if "?" in url:
            rec = streamclient.StreamRecord(url=url, sent_to=c.s.real_url(url), closed_by="refused")
        else:
            rec = streamclient.run(url, c.s.real_url(url), signature, t.account_sid, t.call_sid, new_sid("MZ"),
                                   custom, plan)
        t.streams.append(rec)
        t.errors.extend(f"stream: {e}" for e in rec.errors)
        c.call_s += rec.audio_s  # the stream paced itself on the wall clock already
        c.leave_phase()
        if rec.closed_by == "caller" or rec.closed_by == "timeout":
            c.hangup_while = None
            t.path.append("hung up while listening")
            raise CallEnded("hung up while listening", "caller")
        t.path.append(f"listened {rec.audio_s:.1f} s" if rec.closed_by == "server" else f"stream {rec.closed_by}")
        action = twiml_exec.resolve(doc_url, verb.attrs.get("action"))
        if action:
            return Next("connect-action", action, twiml_exec.method(verb))
        return None

    # --- <Dial> ----------------------------------------------------------------
    def dial(self, verb, doc_url: str) -> "Next | None":
        from ivr.telephony.standin import AgentBehaviour, CallEnded, CallerHungUp, Next, new_sid

        c, t = self.call, self.call.trace
        targets = twiml_exec.dial_targets(verb)
        if not targets:
            t.errors.append("<Dial> with nobody to dial")
            raise CallEnded("application error", "error")
        address, noun = targets[0]
        behaviour = c.behaviours.popleft() if c.behaviours else AgentBehaviour()
        timeout = min(600.0, max(5.0, twiml_exec.number(verb.attrs.get("timeout"), 30.0)))
        rec = DialRecord(address=address, targets=[a for a, _ in targets], behaviour=behaviour.kind,
                         dial_call_sid=new_sid("CA"), timeout_s=timeout)
        t.dials.append(rec)
        c.enter("ringing")
        status, talked = behaviour.kind, 0.0
        caller_gone = False
        if behaviour.kind == "failed":
            status = "failed"
        elif behaviour.kind == "busy":
            c.advance(min(behaviour.ring_s, timeout))
        elif behaviour.kind == "no-answer" or behaviour.ring_s >= timeout:
            c.advance(timeout)
            status = "no-answer"
        else:
            c.advance(behaviour.ring_s)
            bridged = self._agent_picks_up(rec, noun, verb, doc_url)
            status, rec.bridged = "completed", bridged
            if bridged:
                t.connected_to = address
                t.path.append(f"dialed {address}, answered")
                c.enter("connected")
                before = c.call_s
                try:
                    c.advance(behaviour.talk_s)
                except CallerHungUp:
                    caller_gone = rec.caller_hung_up = True
                c.leave_phase()
                talked = c.call_s - before
            else:
                t.path.append(f"dialed {address}, agent hung up before the bridge")
        rec.status, rec.duration_s = status, int(round(talked))
        if status != "completed":
            t.path.append(f"dialed {address}, {status}")
        params = {"DialCallStatus": status, "DialCallSid": rec.dial_call_sid, "DialBridged": str(rec.bridged).lower()}
        if status == "completed":
            params["DialCallDuration"] = str(rec.duration_s)
        action = twiml_exec.resolve(doc_url, verb.attrs.get("action"))
        if caller_gone:
            # The caller hung up on the agent: Twilio still reports the dial, but nothing more plays.
            if action:
                c.request("dial-action", action, twiml_exec.method(verb), c.params(CallStatus="completed", **params))
            raise CallEnded(f"talked to {address}, caller hung up", "caller")
        if action:
            return Next("dial-action", action, twiml_exec.method(verb), params)
        return None

    def _agent_picks_up(self, rec: DialRecord, noun, dial, doc_url: str) -> bool:
        """The answering party runs the noun's ``url`` TwiML; False if it hangs up before the bridge."""
        c = self.call
        url = twiml_exec.resolve(doc_url, noun.attrs.get("url")) if noun is not None else None
        if not url:
            return True
        rec.answer_url = url
        t = c.trace
        params = dict(c.params(), CallSid=rec.dial_call_sid, ParentCallSid=t.call_sid, Direction="outbound-dial",
                      CallStatus="in-progress", From=dial.attrs.get("callerId", t.from_), To=rec.address,
                      Caller=dial.attrs.get("callerId", t.from_), Called=rec.address)
        method = twiml_exec.method(noun)
        for _ in range(10):  # a Redirect chain on the agent's leg, bounded
            _req, verbs = c.request("answer-url", url, method, params, leg="agent")
            if verbs is None:
                return False  # Twilio drops the agent leg on an application error
            redirect = None
            for v in verbs:
                c.record_verb(v, url, leg="agent")
                if v.name == "Say":
                    rec.agent_says.append(v.text)
                    c.advance(twiml_exec.say_seconds(v.text))
                elif v.name == "Play":
                    c.advance(twiml_exec.PLAY_S)
                elif v.name == "Pause":
                    c.advance(twiml_exec.pause_seconds(v))
                elif v.name in ("Hangup", "Reject"):
                    return False
                elif v.name == "Redirect":
                    redirect = twiml_exec.resolve(url, v.text)
                    method = twiml_exec.method(v)
                    break
            if redirect is None:
                return True
            url = redirect
        return True

    # --- <Enqueue> -------------------------------------------------------------
    def enqueue(self, verb, doc_url: str) -> "Next | None":
        from ivr.telephony.standin import CallEnded, CallerHungUp, Next

        c, t = self.call, self.call.trace
        name = verb.text or "default"
        queue_sid = "QU" + hashlib.sha1(f"{t.account_sid}|{name}".encode()).hexdigest()[:32]
        rec = QueueRecord(name=name, queue_sid=queue_sid)
        t.queues.append(rec)
        t.path.append(f"queued in {name}")
        wait_url = twiml_exec.resolve(doc_url, verb.attrs.get("waitUrl"))
        wait_method = twiml_exec.method(verb, "waitUrlMethod")
        entered = c.call_s
        c.enter("queued")
        result = ""
        try:
            while not result:
                waited = c.call_s - entered
                if waited >= c.s.max_queue_s or rec.polls >= MAX_WAIT_POLLS:
                    t.errors.append(f"still queued after {waited:.0f} s and {rec.polls} wait polls: the wait "
                                    "document never said <Leave/>; the caller hung up")
                    raise CallerHungUp("queued")
                if wait_url is None:  # Twilio's hold music: nothing ever leaves by itself here
                    c.advance(c.s.max_queue_s - waited)
                    continue
                rec.polls += 1
                params = {"QueuePosition": c.queue_position, "QueueSid": queue_sid, "QueueTime": int(waited),
                          "AvgQueueTime": int(waited), "CurrentQueueSize": c.queue_position,
                          "MaxQueueSize": MAX_QUEUE_SIZE}
                result = self._wait_document(wait_url, wait_method, c.params(**params))
        except CallerHungUp:
            result = "hangup"
            t.path.append(f"hung up while queued in {name}")
        rec.result, rec.queue_time_s = result, int(round(c.call_s - entered))
        c.leave_phase()
        if result == "leave":
            t.path.append(f"left queue {name} after {rec.polls} polls")
        action = twiml_exec.resolve(doc_url, verb.attrs.get("action"))
        params = {"QueueResult": result, "QueueSid": queue_sid, "QueueTime": str(rec.queue_time_s)}
        if result in ("hangup", "error"):
            if action:  # reported, but a caller who is gone hears nothing more
                extra = {"CallStatus": "completed"} if result == "hangup" else {}
                c.request("enqueue-action", action, twiml_exec.method(verb), c.params(**params, **extra))
            if result == "hangup":
                raise CallEnded("hung up while queued", "caller")
            raise CallEnded("application error", "error")
        if action:
            return Next("enqueue-action", action, twiml_exec.method(verb), params)
        return None

    def _wait_document(self, url: str, method: str, params: dict) -> str:
        """Play one wait document; ``leave``, ``hangup``, ``error``, or "" when it ran out."""
        c = self.call
        for _ in range(10):  # Redirects inside the wait document, bounded
            _req, verbs = c.request("wait", url, method, params, leg="wait")
            if verbs is None:
                return "error"
            redirect = None
            for v in verbs:
                c.record_verb(v, url, leg="wait")
                if v.name not in twiml_exec.WAIT_VERBS:
                    c.trace.errors.append(f"<{v.name}> is not allowed in an <Enqueue> wait document")
                    continue
                if v.name == "Say":
                    c.trace.says.append(v.text)
                    c.advance(twiml_exec.say_seconds(v.text))
                elif v.name == "Play":
                    c.advance(twiml_exec.PLAY_S)
                elif v.name == "Pause":
                    c.advance(twiml_exec.pause_seconds(v))
                elif v.name == "Leave":
                    return "leave"
                elif v.name == "Hangup":
                    return "hangup"
                elif v.name == "Redirect":
                    redirect = twiml_exec.resolve(url, v.text)
                    method = twiml_exec.method(v)
                    break
            if redirect is None:
                return ""
            url = redirect
        return ""
