"""One guest connection to a catcher of the boot test on this host (the SMTP sink, the syslog
collector): qemu's guestfwd `cmd:` runs this per connection with the guest's stream on
stdin/stdout (a `tcp:` target would connect only once)."""

import socket
import sys
import threading

sink = socket.create_connection(("127.0.0.1", int(sys.argv[1])))


def to_guest() -> None:
    while data := sink.recv(65536):
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()


threading.Thread(target=to_guest, daemon=True).start()
while data := sys.stdin.buffer.read1(65536):
    sink.sendall(data)
