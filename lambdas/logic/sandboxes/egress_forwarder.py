"""Runs inside the sandbox (system python3, standard library only, nothing of pixie imported):
listens on 127.0.0.1:PORT of the sandbox's own loopback and passes every connection to the
egress proxy's unix socket, which pixie bound into the sandbox. Usage: SOCKET PORT.

It returns once it is listening (the server goes on in a forked child), so the command that
follows can use the proxy at once; it dies with the sandbox's PID namespace."""

import os
import socket
import sys
import threading


def _copy(source, target):
    try:
        while True:
            data = source.recv(65536)
            if not data:
                break
            target.sendall(data)
    except OSError:
        pass
    try:
        target.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def _serve(client, unix_path):
    upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        upstream.connect(unix_path)
    except OSError:
        client.close()
        upstream.close()
        return
    back = threading.Thread(target=_copy, args=(upstream, client), daemon=True)
    back.start()
    _copy(client, upstream)
    back.join()
    client.close()
    upstream.close()


def main():
    unix_path, port = sys.argv[1], int(sys.argv[2])
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(128)
    if os.fork():
        os._exit(0)  # listening: the command may start
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):  # the command's pipes must close when the command ends, not when this does
        os.dup2(null, fd)
    while True:
        client, _ = listener.accept()
        threading.Thread(target=_serve, args=(client, unix_path), daemon=True).start()


if __name__ == "__main__":
    main()
