"""Serve a WSGI app (the hotline's Flask app, or a fake) on a free local port in a thread.

For tests and benchmarks that drive an app with the Twilio stand-in over real HTTP and
WebSockets. werkzeug's threaded server supports flask-sock's WebSocket upgrade.
"""

from __future__ import annotations

import threading
from typing import Callable

from werkzeug.serving import make_server


def serve_in_thread(app, host: str = "127.0.0.1", port: int = 0) -> tuple[str, Callable[[], None]]:
    """Start serving ``app``; returns ``(base_url, stop)``. ``stop()`` is idempotent."""
    server = make_server(host, port, app, threaded=True)
    server.daemon_threads = True  # an open media stream must not keep the test process alive
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              name=f"testserver-{server.server_port}", daemon=True)
    thread.start()
    stopped = threading.Event()

    def stop() -> None:
        if stopped.is_set():
            return
        stopped.set()
        server.shutdown()
        server.server_close()
        thread.join(5)

    return f"http://{host}:{server.server_port}", stop
