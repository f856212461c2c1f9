#!/usr/bin/env python3
"""A lying etcd gateway on 127.0.0.1 for t_etcd_lying: fake_etcd.py MODE PORTFILE.

Answers every POST according to MODE (see ANSWERS), so the client meets bad
JSON, wrong types, another cluster id, revisions going backwards, a watch
whose events go back in time, and a server that never answers."""
import http.server
import json
import sys
import threading
import time

MODE = sys.argv[1]
calls = {"n": 0}
lock = threading.Lock()


def header(cluster="7", revision="100"):
    return {"cluster_id": cluster, "member_id": "1", "revision": revision, "raft_term": "2"}


def answer(path, n):
    if MODE == "garbage":
        return b"this is not json"
    if MODE == "types":
        return json.dumps({"header": {"cluster_id": "7", "revision": {"x": 1}}}).encode()
    if MODE == "deep":
        return b"[" * 100000 + b"]" * 100000
    if MODE == "nul":
        return b'{"header":{"cluster_id":"7","revision":"1"},"kvs":[{"key":"YQ\\u0000=="}]}'
    if MODE == "cluster":  # a different cluster id on every answer
        return json.dumps({"header": header(cluster=str(7 + n))}).encode()
    if MODE == "backwards":  # the second answer is older than the first
        return json.dumps({"header": header(revision="100" if n == 0 else "5")}).encode()
    if MODE == "watch":  # the data key's txn succeeds, then the watch lies
        return json.dumps({"header": header(revision="100"), "succeeded": True}).encode()
    return b"{}"


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        self.rfile.read(length)
        with lock:
            n = calls["n"]
            calls["n"] += 1
        if MODE == "hang":
            time.sleep(30)
            return
        if self.path == "/v3/watch" and MODE == "watch":
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            msgs = [
                {"result": {"header": header(revision="100"), "created": True}},
                {"result": {"header": header(revision="100"), "events": [
                    {"kv": {"key": "L3NlY3JldGQvbi9h", "mod_revision": "50", "value": "U0RIMQAAAAEA"}}]}},
                {"result": {"header": header(revision="100"), "events": [
                    {"kv": {"key": "L3NlY3JldGQvbi9h", "mod_revision": "40", "value": "U0RIMQAAAAIA"}}]}},
            ]
            for m in msgs:
                data = json.dumps(m).encode() + b"\n"
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()
            time.sleep(5)
            return
        body = answer(self.path, n)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
server.daemon_threads = True
with open(sys.argv[2] + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
import os
os.rename(sys.argv[2] + ".tmp", sys.argv[2])
server.serve_forever()
