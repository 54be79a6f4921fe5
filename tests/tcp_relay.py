# SPDX-License-Identifier: MIT
"""Standard input and output ↔ one TCP connection to 127.0.0.1:PORT.

qemu's user network runs it for each connection the guest opens to a ``guestfwd=…-cmd:``
address (a ``tcp:`` chardev there would be one connection for the VM's whole life, opened
when qemu starts). With nothing listening it exits at once: the guest sees the connection
closed, as it would a repository that is down."""

from __future__ import annotations

import os
import socket
import sys
import threading


def main(port: int) -> None:
    try:
        connection = socket.create_connection(("127.0.0.1", port), timeout=10)
    except OSError:
        return
    connection.settimeout(None)

    def upstream() -> None:
        while data := os.read(0, 65536):
            connection.sendall(data)
        connection.shutdown(socket.SHUT_WR)

    threading.Thread(target=upstream, daemon=True).start()
    while data := connection.recv(65536):
        os.write(1, data)


if __name__ == "__main__":
    main(int(sys.argv[1]))
