#!/usr/bin/env python3
"""A lying rn peer for ci/e2e-liar.sh (a test server, never part of rn).

Serves DIR/<mode>/PATH, else DIR/base/PATH (an honest layout), where <mode> is read from
DIR/mode at each request, except in two modes that lie with the transport itself:
  huge  every rn/v1/log/<epoch> is a 1 GiB body (streamed until the reader hangs up)
  slow  every answer trickles out one byte a second (slowloris)
Usage: liar.py DIR ADDRESS PORT
"""
import http.server
import os
import sys
import time

DIR, HOST, PORT = sys.argv[1], sys.argv[2], int(sys.argv[3])


class Liar(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def send(self, status, body):
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        with open(os.path.join(DIR, "mode")) as f:
            mode = f.read().strip()
        path = self.path.lstrip("/").split("?")[0]
        if ".." in path:
            return self.send(400, b"no\n")
        try:
            if mode == "slow":
                self.send_response(200)
                self.send_header("Content-Length", "4096")
                self.end_headers()
                for _ in range(120):
                    self.wfile.write(b" ")
                    self.wfile.flush()
                    time.sleep(1)
                return
            if mode == "huge" and path.startswith("rn/v1/log/"):
                self.send_response(200)
                self.send_header("Content-Length", str(1 << 30))
                self.end_headers()
                chunk = b"0" * 65536
                for _ in range((1 << 30) // len(chunk)):
                    self.wfile.write(chunk)
                return
        except OSError:
            return
        for root in (os.path.join(DIR, mode), os.path.join(DIR, "base")):
            p = os.path.join(root, path)
            if os.path.isfile(p):
                with open(p, "rb") as f:
                    return self.send(200, f.read())
        self.send(404, b"not here\n")


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True


Server((HOST, PORT), Liar).serve_forever()
