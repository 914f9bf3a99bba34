"""schemathesis hooks for test_schemathesis.py (loaded by the schemathesis run it starts,
through SCHEMATHESIS_HOOKS): bodies in the media types tessera takes that schemathesis
cannot serialize by itself, and MessagePack answers read back for its reports.

A generated body is either raw bytes (garbage the server must refuse with a 4xx) or, where
the test's copy of the document asks for it, an object that becomes a well-formed file:
an Arrow IPC file of its columns, or a zip of its entries.
"""

import io
import json
import zipfile

import msgpack
import pyarrow as pa
import schemathesis
from schemathesis.transport.serialization import serialize_binary


def _raw(value):
    return serialize_binary(value)


def _column(values):
    """An Arrow column of `values`; text when they mix types or overflow."""
    if not isinstance(values, list):
        values = [values]
    try:
        return pa.array(values)
    except (pa.ArrowException, TypeError, ValueError, OverflowError):
        return pa.array([json.dumps(v) for v in values])


def _arrow_file(columns):
    arrays = {str(k): _column(v) for k, v in columns.items()}
    if arrays:
        # Columns of a table share one length: the shortest wins.
        n = min(len(a) for a in arrays.values())
        arrays = {k: a.slice(0, n) for k, a in arrays.items()}
    table = pa.table(arrays)
    sink = io.BytesIO()
    with pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


@schemathesis.serializer("application/vnd.apache.arrow.file")
def arrow(ctx, value):
    if isinstance(value, dict):
        return _arrow_file(value)
    return _raw(value)


@schemathesis.serializer("application/zip")
def zip_of_entries(ctx, value):
    if not isinstance(value, dict):
        return _raw(value)
    sink = io.BytesIO()
    with zipfile.ZipFile(sink, "w", zipfile.ZIP_STORED) as z:
        for name, data in value.items():
            # zipfile cuts a name at NUL; an empty name it cannot store.
            z.writestr(str(name).split("\0")[0] or "_", _raw(data))
    return sink.getvalue()


@schemathesis.deserializer("application/x-msgpack")
def from_msgpack(ctx, response):
    return msgpack.unpackb(response.content, timestamp=3)
