"""A small HTTP server for rbk's remote-source tests.

Serves the files of DIR with ETag (sha256 of the content) and Last-Modified
(the file's mtime), answers If-None-Match / If-Modified-Since with 304, and
has a few misbehaving modes, chosen by the first path component:

  /f/NAME             the file (200, or 304 when the validators match)
  /redirect/NAME      302 to /f/NAME
  /loop/N             302 to /loop/N+1, forever
  /cd/                the file named by ?name=NAME, with Content-Disposition
                      naming it NAME (and no name in the URL path)
  /stall/NAME         headers with a Content-Length, then no body for 3600 s
  /short/NAME         Content-Length one larger than the body, then close
  /overlong/NAME      Content-Length smaller than the body, body sent whole
  /flaky/N/NAME       503 for the first N requests of this URL, then the file
  /status/CODE[/…]    an empty answer with that status
  /auth/TOKEN/PATH    ROOT/PATH (any depth: a dumb-HTTP git repository) when
                      the request has `Authorization: basic
                      base64(x-access-token:TOKEN)`, else 401
  http://HOST/…       (absolute form, as sent to a proxy) logged as proxied,
                      then served as the path

Prints the port on its first line of stdout. Logs one line per request to
LOG: `METHOD PATH STATUS cond=yes|no bytes=N proxied=yes|no`.

Usage: python3 http_server.py DIR LOG
"""

import base64
import email.utils
import hashlib
import os
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ROOT = os.path.abspath(sys.argv[1])
LOG = sys.argv[2]
LOCK = threading.Lock()
COUNTS = {}


def log(line):
    with LOCK:
        with open(LOG, "a") as f:
            f.write(line + "\n")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        proxied = "no"
        path = self.path
        if path.startswith("http://"):
            proxied = "yes"
            path = "/" + path.split("/", 3)[3] if path.count("/") >= 3 else "/"
        url = urllib.parse.urlsplit(path)
        parts = url.path.split("/")[1:]
        cond = "yes" if (self.headers.get("If-None-Match") or self.headers.get("If-Modified-Since")) else "no"
        status, sent = self.route(parts, urllib.parse.parse_qs(url.query), url.path)
        log(f"GET {path} {status} cond={cond} bytes={sent} proxied={proxied}")

    def route(self, parts, query, path):
        mode = parts[0] if parts else ""
        rest = "/".join(parts[1:])
        if mode == "f":
            return self.serve(rest)
        if mode == "redirect":
            return self.redirect("/f/" + rest)
        if mode == "loop":
            return self.redirect(f"/loop/{int(rest or 0) + 1}")
        if mode == "cd":
            name = query.get("name", [""])[0]
            return self.serve(name, disposition=name)
        if mode == "stall":
            return self.stall(rest)
        if mode == "short":
            return self.serve(rest, length_delta=1)
        if mode == "overlong":
            return self.serve(rest, length_delta=-5)
        if mode == "flaky":
            n, name = rest.split("/", 1)
            with LOCK:
                COUNTS[path] = COUNTS.get(path, 0) + 1
                count = COUNTS[path]
            if count <= int(n):
                return self.empty(503)
            return self.serve(name)
        if mode == "status":
            return self.empty(int(parts[1]))
        if mode == "auth":
            return self.auth(parts[1], "/".join(parts[2:]))
        return self.empty(404)

    def empty(self, status):
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()
        return status, 0

    def redirect(self, location):
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()
        return 302, 0

    def read(self, name):
        path = os.path.join(ROOT, name)
        if not name or "/" in name or not os.path.isfile(path):
            return None
        with open(path, "rb") as f:
            data = f.read()
        return data, os.stat(path).st_mtime

    def serve(self, name, disposition=None, length_delta=0):
        found = self.read(name)
        if found is None:
            return self.empty(404)
        data, mtime = found
        etag = '"' + hashlib.sha256(data).hexdigest()[:32] + '"'
        modified = email.utils.formatdate(int(mtime), usegmt=True)
        inm = self.headers.get("If-None-Match")
        ims = self.headers.get("If-Modified-Since")
        not_modified = inm == etag if inm is not None else (
            ims is not None and email.utils.parsedate_to_datetime(ims).timestamp() >= int(mtime))
        if not_modified:
            self.send_response(304)
            self.send_header("ETag", etag)
            self.send_header("Last-Modified", modified)
            self.end_headers()
            return 304, 0
        self.send_response(200)
        self.send_header("ETag", etag)
        self.send_header("Last-Modified", modified)
        if disposition:
            self.send_header("Content-Disposition", f'attachment; filename="{disposition}"')
        self.send_header("Content-Length", str(len(data) + length_delta))
        if length_delta:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()
        return 200, len(data)

    def auth(self, token, rel):
        want = "basic " + base64.b64encode(f"x-access-token:{token}".encode()).decode()
        if self.headers.get("Authorization", "").lower() != want.lower():
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="rbk"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return 401, 0
        path = os.path.normpath(os.path.join(ROOT, rel))
        if not path.startswith(ROOT + "/") or not os.path.isfile(path):
            return self.empty(404)
        with open(path, "rb") as f:
            data = f.read()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        return 200, len(data)

    def stall(self, name):
        found = self.read(name)
        if found is None:
            return self.empty(404)
        data, _ = found
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.flush()
        time.sleep(3600)
        return 200, 0


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
