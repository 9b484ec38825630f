"""Scale-out: two `ivr serve` processes on one Redis serve one call between them.

Twilio may send each request of a call to any server behind the load balancer; here
every request (webhook and Media Stream) alternates between two real server processes,
so no step of the call can rely on state kept in one process.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from tests.resilience.conftest import KO, SPEECH, on_shift, pretrain, standin, write_config


class Alternating:
    """Where each of the stand-in's requests goes: server A, then B, then A..."""

    def __init__(self, *base_urls: str):
        self.base_urls = base_urls
        self.sent: list[tuple[str, str]] = []  # (path, base url)

    def install(self, s):
        original = s.real_url

        def real_url(url: str) -> str:
            target = self.base_urls[len(self.sent) % len(self.base_urls)]
            s.connect_to = target
            routed = original(url)
            self.sent.append((urlsplit(url).path, target))
            return routed

        s.real_url = real_url
        return s


def test_one_call_moves_between_two_servers_and_completes(tmp_path, redis_server, redis, servers):
    # a config file not named config.yaml: every worker must read the file it was given
    config = write_config(tmp_path / "cfg", agents=2)
    config = config.rename(config.with_name("hotline-prod.yaml"))
    pretrain(config, redis_server.url)
    a = servers(config, redis_server.url)
    b = servers(config, redis_server.url)
    assert a.pid != b.pid and a.port != b.port
    on_shift(a.url, "bench01")  # through one server; the other sees it in Redis
    on_shift(b.url, "bench02")

    route = Alternating(a.url, b.url)
    s = route.install(standin(a.url))
    trace = s.place_call([SPEECH / "ko_payment.wav", SPEECH / "ko_payment.wav"], to=KO, agent_behaviour=["no", "yes"])

    assert trace.ok, trace.render()
    # both servers took part, the stream and the <Connect> action included
    assert {base for _, base in route.sent} == {a.url, b.url}
    paths = [p for p, _ in route.sent]
    assert "/twilio/stream" in paths and "/twilio/listened" in paths
    stream_at = route.sent[paths.index("/twilio/stream")][1]
    voice_at = route.sent[paths.index("/twilio/voice")][1]
    listened_at = route.sent[paths.index("/twilio/listened")][1]
    assert stream_at != voice_at and listened_at != stream_at
    # the first agent did not answer; the call was routed again, to the other one, who answered
    assert trace.dial_statuses == ["no-answer", "completed"], trace.render()
    assert trace.dials[0].address != trace.dials[1].address
    assert trace.connected_to in ("client:bench01", "client:bench02")
    assert all(r.status == 200 for r in trace.requests), trace.render()

    # Whichever server is asked, the call is over and recorded once
    from tests.resilience.conftest import api

    for base in (a.url, b.url):
        record = api(base, "GET", f"/api/calls/{trace.call_sid}").json()
        assert record["live"] is False and record["call"]["outcome"] == "answered"
