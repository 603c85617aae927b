"""A TCP echo server that speaks no HTTP at all: the probe must stay silent about its traffic.

    python echo_server.py PORT

Echoes every byte back on each connection (one thread per connection) until the peer closes.
"""

from __future__ import annotations

import socketserver
import sys


class Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(65536):
            self.request.sendall(data)


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


def main(argv: list[str]) -> int:
    if len(argv) != 2 or not argv[1].isdigit():
        print(f"usage: python {argv[0]} PORT", file=sys.stderr)
        return 2
    with Server(("127.0.0.1", int(argv[1])), Echo) as server:
        server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
