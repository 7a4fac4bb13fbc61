# A client that sends N requests one after the other: on one keep-alive connection, or one
# connection per request ("close"). Used by instructions.sh, where the count must not vary.
import socket, sys
port, n, close = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "close"
req = b"GET /small HTTP/1.1\r\nHost: x\r\n" + (b"Connection: close\r\n" if close else b"") + b"\r\n"
def one(s, buf):
    s.sendall(req)
    while True:
        i = buf.find(b"\r\n\r\n")
        if i >= 0:
            head = buf[:i].lower()
            cl = int(head.split(b"content-length:")[1].split(b"\r\n")[0])
            if len(buf) >= i + 4 + cl:
                return buf[i + 4 + cl:]
        d = s.recv(65536)
        if not d: raise SystemExit("closed")
        buf += d
if close:
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port)); one(s, b""); s.close()
else:
    s = socket.create_connection(("127.0.0.1", port)); buf = b""
    for _ in range(n): buf = one(s, buf)
