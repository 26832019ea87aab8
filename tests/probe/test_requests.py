"""What the probe sends: the method, body and headers asked for, on streams and health alike."""

from __future__ import annotations

from tests.probe._servers import TinyServer, quick_config

from hangdoctor.probe.engine import probe
from hangdoctor.probe.timeline import ProbeVerdict


def test_post_body_and_headers_reach_the_server() -> None:
    """--method POST --body and --header arrive with every stream; health is a GET with them."""
    with TinyServer() as server:
        config = quick_config(
            server.url,
            streams=("/sse-post",),
            clients=2,
            duration_s=1.0,
            method="POST",
            body='{"q": "news"}',
            headers=(("X-Token", "abc"),),
        )
        result = probe(config, capture=False)
        posts = list(server.posts)
        tokens = list(server.health_tokens)
    assert result.verdict is ProbeVerdict.PASS
    assert len(posts) >= 2
    assert set(posts) == {(b'{"q": "news"}', "abc")}
    assert result.summary.streams_opened >= 2 and result.summary.events >= 2
    assert len(tokens) >= 10 and set(tokens) == {"abc"}  # preflight and the clock's requests
