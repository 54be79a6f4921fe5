# SPDX-License-Identifier: MIT
"""The agent's Internet check against real HTTP servers on the loopback: what each kind of
answer means for the LED (online, captive, offline), and that the check's http path never
loads ssl (the memory it saves on a Pi 3)."""

from __future__ import annotations

import http.server
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest

from hardware.facts import ANSWER_LIMIT, http_get, internet
from hardware.state import Internet

EXPECT = "NetworkManager is online"


class Answers(http.server.BaseHTTPRequestHandler):
    """/nm: the check's text; /portal: a portal's page; /moved: a redirect; /huge: the text
    after more than the check reads; anything else: 404."""

    protocol_version = "HTTP/1.1"  # keep-alive offered: the check must still end

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        pages = {"/nm": EXPECT + "\n", "/nm?x=1": EXPECT + "\n", "/portal": "<html>Welcome, guest</html>",
                 "/huge": "x" * (2 * ANSWER_LIMIT) + EXPECT}
        if self.path == "/moved":
            self.send_response(302)
            self.send_header("Location", "/nm")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.path not in pages:
            self.send_error(404)
            return
        body = pages[self.path].encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Answers)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.mark.parametrize(("path", "expected"), [
    ("/nm", Internet.online),
    ("/nm?x=1", Internet.online),
    ("/portal", Internet.captive),   # a portal answers with its own page
    ("/moved", Internet.captive),    # or redirects: not followed
    ("/missing", Internet.captive),  # an error is an answer too
    ("/huge", Internet.captive),     # the text beyond what is read does not count
])
def test_what_an_answer_means(server: str, path: str, expected: Internet) -> None:
    assert internet(server + path, EXPECT, timeout=5) is expected


def test_nothing_listening_is_offline() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: refused
        assert internet(f"http://127.0.0.1:{port}/nm", EXPECT, timeout=2) is Internet.offline


def test_a_server_that_never_answers_is_offline_after_the_timeout() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        assert internet(f"http://127.0.0.1:{sock.getsockname()[1]}/nm", EXPECT,
                        timeout=0.5) is Internet.offline


def test_an_answer_that_is_not_http_is_offline() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()

        def babble() -> None:
            connection, _ = sock.accept()
            with connection:
                connection.recv(1024)
                connection.sendall(b"SSH-2.0-OpenSSH_9.2\r\n")

        threading.Thread(target=babble, daemon=True).start()
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/nm"
        with pytest.raises(ValueError, match="not HTTP"):
            http_get(url, 2)
        threading.Thread(target=babble, daemon=True).start()
        assert internet(url, EXPECT, timeout=2) is Internet.offline


def test_the_http_check_loads_no_ssl(server: str) -> None:
    code = ("import sys, gpiozero, hardware.__main__; from hardware import facts; "
            f"print(facts.internet({server + '/nm'!r}, {EXPECT!r}).name, 'ssl' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["online", "False"]
