"""An HTTP/1.1 server that writes each response in pieces, its status line split among them.

    python cut_response_server.py PORT CUTS PAUSE_MS

CUTS are byte offsets into each response, comma-separated and ascending ("1,4"): the response
goes out in one send per piece between them, with PAUSE_MS between writes. The probe tells a
message by its first bytes, so a status line whose first write is "H" or "HTTP" is the case
this server exists for. Keep-alive; GET only; every answer is 200 with a small JSON body
naming the path. One thread per connection.
"""

from __future__ import annotations

import socketserver
import sys
import time


class CutResponses(socketserver.StreamRequestHandler):
    cuts: tuple[int, ...] = ()
    pause_s = 0.0

    def handle(self) -> None:
        while True:
            start_line = self.rfile.readline(65537)
            if not start_line:
                return
            while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                pass  # the request's headers; a GET has no body
            path = start_line.split(b" ")[1] if start_line.count(b" ") >= 2 else b"/"
            body = b'{"path":"' + path.split(b"?")[0] + b'"}'
            response = (
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
            )
            bounds = [0, *(c for c in self.cuts if 0 < c < len(response)), len(response)]
            for i in range(len(bounds) - 1):
                if i:
                    time.sleep(self.pause_s)
                self.wfile.write(response[bounds[i] : bounds[i + 1]])


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


def main(argv: list[str]) -> int:
    if len(argv) != 4 or not argv[1].isdigit():
        print(f"usage: python {argv[0]} PORT CUTS PAUSE_MS", file=sys.stderr)
        return 2
    CutResponses.cuts = tuple(int(c) for c in argv[2].split(",") if c)
    CutResponses.pause_s = int(argv[3]) / 1000
    with Server(("127.0.0.1", int(argv[1])), CutResponses) as server:
        server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
