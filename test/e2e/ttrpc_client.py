"""A minimal ttrpc client and protobuf codec for the end-to-end tests.

It speaks to a shim's socket directly, as containerd does, for the calls ctr
1.6 cannot make (Update, the v3 service, CheckpointOptions it never sends).

Framing (containerd/ttrpc PROTOCOL.md): a 10-byte big-endian header
(data length u32, stream id u32, message type u8, flags u8), then the data.
The data of a request is a ttrpc.Request, of a response a ttrpc.Response:

    Request  { service=1 string, method=2 string, payload=3 bytes,
               timeout_nano=4 int64, metadata=5 repeated KeyValue{key=1, value=2} }
    Response { status=1 google.rpc.Status{code=1 int32, message=2 string},
               payload=2 bytes }

The protobuf codec covers what these tests need: varints, length-delimited
fields, nested messages, and skipping fixed-width fields on decode.
Standard library only.
"""

import socket
import struct
import time

HEADER = struct.Struct(">IIBB")
MESSAGE_REQUEST = 1
MESSAGE_RESPONSE = 2
MAX_MESSAGE = 4 << 20

NAMESPACE_KEY = "containerd-namespace-ttrpc"
TASK_V2 = "containerd.task.v2.Task"
TASK_V3 = "containerd.task.v3.Task"

# gRPC status codes used by the tests
OK = 0
NOT_FOUND = 5
FAILED_PRECONDITION = 9
UNIMPLEMENTED = 12

# containerd.v1.types.Status
STATUS_NAMES = {0: "UNKNOWN", 1: "CREATED", 2: "RUNNING", 3: "STOPPED", 4: "PAUSED",
                5: "PAUSING"}

LINUX_RESOURCES_URL = "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources"
CHECKPOINT_OPTIONS_URL = "containerd.runc.v1.CheckpointOptions"

WIRE_VARINT, WIRE_FIXED64, WIRE_BYTES, WIRE_FIXED32 = 0, 1, 2, 5


# --- protobuf -------------------------------------------------------------------

def encode_varint(value):
    if value < 0:  # int32/int64 negatives are sent as 10-byte two's complement
        value += 1 << 64
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def decode_varint(data, pos):
    result = shift = 0
    while True:
        if pos >= len(data):
            raise ValueError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise ValueError("varint too long")


def field_varint(number, value):
    """A varint field (int32/int64/uint32/bool/enum); zero is omitted (proto3)."""
    if not value:
        return b""
    return encode_varint(number << 3 | WIRE_VARINT) + encode_varint(int(value))


def field_bytes(number, value, keep_empty=False):
    """A length-delimited field (string, bytes, embedded message)."""
    if isinstance(value, str):
        value = value.encode()
    if not value and not keep_empty:
        return b""
    return encode_varint(number << 3 | WIRE_BYTES) + encode_varint(len(value)) + value


def message(*fields):
    return b"".join(fields)


def decode_message(data):
    """{field number: [values]}: ints for varints and fixed fields, bytes for
    length-delimited ones (decode those again for nested messages)."""
    fields = {}
    pos = 0
    while pos < len(data):
        key, pos = decode_varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == WIRE_VARINT:
            value, pos = decode_varint(data, pos)
        elif wire == WIRE_BYTES:
            length, pos = decode_varint(data, pos)
            value = bytes(data[pos:pos + length])
            if len(value) != length:
                raise ValueError("truncated length-delimited field")
            pos += length
        elif wire == WIRE_FIXED64:
            value = struct.unpack_from("<Q", data, pos)[0]
            pos += 8
        elif wire == WIRE_FIXED32:
            value = struct.unpack_from("<I", data, pos)[0]
            pos += 4
        else:
            raise ValueError(f"unsupported wire type {wire} (field {number})")
        fields.setdefault(number, []).append(value)
    return fields


def first(fields, number, default=None):
    values = fields.get(number)
    return values[0] if values else default


def first_str(fields, number):
    return first(fields, number, b"").decode()


def signed32(value):
    value &= (1 << 64) - 1
    return value - (1 << 64) if value >= 1 << 63 else value


def any_message(type_url, value):
    """google.protobuf.Any{type_url=1, value=2}."""
    return message(field_bytes(1, type_url), field_bytes(2, value))


# --- Task API messages -------------------------------------------------------------

def state_request(container_id, exec_id=""):
    return message(field_bytes(1, container_id), field_bytes(2, exec_id))


def decode_state_response(payload):
    f = decode_message(payload)
    return {
        "id": first_str(f, 1),
        "bundle": first_str(f, 2),
        "pid": first(f, 3, 0),
        "status": STATUS_NAMES.get(first(f, 4, 0), str(first(f, 4, 0))),
        "stdin": first_str(f, 5),
        "stdout": first_str(f, 6),
        "stderr": first_str(f, 7),
        "terminal": bool(first(f, 8, 0)),
        "exit_status": first(f, 9, 0),
        "exec_id": first_str(f, 11),
    }


def update_request(container_id, resources_json):
    """UpdateTaskRequest{id=1, resources=2 Any(LinuxResources as JSON)}."""
    if isinstance(resources_json, str):
        resources_json = resources_json.encode()
    return message(field_bytes(1, container_id),
                   field_bytes(2, any_message(LINUX_RESOURCES_URL, resources_json)))


def checkpoint_options(exit=False, open_tcp=False, external_unix_sockets=False,
                       terminal=False, file_locks=False, image_path="", work_path=""):
    """containerd.runc.v1.CheckpointOptions: exit=1, open_tcp=2,
    external_unix_sockets=3, terminal=4, file_locks=5, image_path=8, work_path=9."""
    return message(field_varint(1, exit), field_varint(2, open_tcp),
                   field_varint(3, external_unix_sockets), field_varint(4, terminal),
                   field_varint(5, file_locks), field_bytes(8, image_path),
                   field_bytes(9, work_path))


def checkpoint_request(container_id, path, options=None):
    """CheckpointTaskRequest{id=1, path=2, options=3 Any(CheckpointOptions)}."""
    opts = field_bytes(3, any_message(CHECKPOINT_OPTIONS_URL, options),
                       keep_empty=True) if options is not None else b""
    return message(field_bytes(1, container_id), field_bytes(2, path), opts)


# --- client --------------------------------------------------------------------------

class TtrpcError(AssertionError):
    pass


class Reply:
    def __init__(self, code, message_text, payload):
        self.code = code
        self.message = message_text
        self.payload = payload

    @property
    def ok(self):
        return self.code == OK

    def __repr__(self):
        return f"Reply(code={self.code}, message={self.message!r}, {len(self.payload)} bytes)"


class TtrpcClient:
    """Unary calls over one connection; stream ids 1, 3, 5, ..."""

    def __init__(self, path, namespace, timeout=10.0):
        self.namespace = namespace
        self.timeout = timeout
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(str(path))
        self.next_stream = 1

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _recv_exact(self, count, deadline):
        chunks = []
        while count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TtrpcError("timed out waiting for the shim's response")
            self.sock.settimeout(remaining)
            chunk = self.sock.recv(count)
            if not chunk:
                raise TtrpcError("the shim closed the connection")
            chunks.append(chunk)
            count -= len(chunk)
        return b"".join(chunks)

    def call(self, service, method, payload=b"", timeout=None):
        """One unary call -> Reply(code, message, payload)."""
        timeout = timeout or self.timeout
        stream = self.next_stream
        self.next_stream += 2
        request = message(
            field_bytes(1, service), field_bytes(2, method), field_bytes(3, payload),
            field_varint(4, int(timeout * 1e9)),
            field_bytes(5, message(field_bytes(1, NAMESPACE_KEY),
                                   field_bytes(2, self.namespace))))
        self.sock.sendall(HEADER.pack(len(request), stream, MESSAGE_REQUEST, 0) + request)
        deadline = time.monotonic() + timeout
        while True:
            length, got_stream, kind, _flags = HEADER.unpack(self._recv_exact(HEADER.size,
                                                                              deadline))
            if length > MAX_MESSAGE:
                raise TtrpcError(f"response of {length} bytes exceeds the ttrpc maximum")
            data = self._recv_exact(length, deadline)
            if kind == MESSAGE_RESPONSE and got_stream == stream:
                break
        response = decode_message(data)
        status = decode_message(first(response, 1, b""))
        return Reply(signed32(first(status, 1, 0)), first_str(status, 2),
                     first(response, 2, b""))

    def task(self, method, payload=b"", service=TASK_V2, timeout=None):
        return self.call(service, method, payload, timeout=timeout)


def shim_address(bundle):
    """The shim's socket path from <bundle>/address (unix://PATH)."""
    address = (bundle / "address").read_text().strip()
    return address.removeprefix("unix://")
