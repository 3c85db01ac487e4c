#!/usr/bin/python3
"""A stand-in collector for the Molecule scenarios: append whatever arrives on PROTO PORT to
FILE. udp: one datagram a line; tcp, tls: the stream as it comes; tcp-frames: an RFC 6587
octet-counted stream, one message a line (the framing removed)."""

import socket
import ssl
import sys
import threading

proto, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
lock = threading.Lock()


def write(data: bytes) -> None:
    with lock, open(path, "ab") as out:
        out.write(data + b"\n")


def frames(conn: socket.socket) -> None:
    buffer = b""
    while data := conn.recv(65535):
        buffer += data
        while b" " in buffer:
            length, _, rest = buffer.partition(b" ")
            if not length.isdigit() or len(rest) < int(length):
                break
            write(rest[: int(length)])
            buffer = rest[int(length) :]


def raw(conn: socket.socket) -> None:
    while data := conn.recv(65535):
        write(data)


if proto == "udp":
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", port))
    while True:
        write(sock.recv(65535))
sock = socket.socket()
sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
sock.bind(("127.0.0.1", port))
sock.listen()
if proto == "tls":
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain("/opt/standin/siem.pem", "/opt/standin/siem.key")
    sock = context.wrap_socket(sock, server_side=True)
serve = frames if proto == "tcp-frames" else raw
while True:
    threading.Thread(target=serve, args=(sock.accept()[0],), daemon=True).start()
