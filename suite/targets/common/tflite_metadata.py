"""A named metadata entry in a TFLite flatbuffer, read and written in pure Python (no TensorFlow, no schema).

A ``.tflite`` file is a FlatBuffer whose root ``Model`` table has ``buffers: [Buffer]`` (field 4) and
``metadata: [Metadata]`` (field 6, ``Metadata { name: string; buffer: uint; }``); a metadata entry names a
buffer whose ``data: [ubyte]`` holds its bytes. That is how the converter stores ``min_runtime_version`` and
``CONVERSION_METADATA``, and what the interpreter exposes through ``get_metadata``-style readers.

Writing without rebuilding the model: FlatBuffers offsets are relative and point forward, so the original
model is kept byte for byte and a *prefix* is put in front of it: a new root ``Model`` table whose fields
point into the original (operator codes, subgraphs, signatures: unchanged) except ``buffers`` and
``metadata``, which are new vectors (the original elements plus one buffer / one entry). The prefix is
padded to a multiple of 64 bytes so every alignment inside the original still holds. Bytes 8..20 carry a
marker and the original's offset, so writing again replaces the prefix instead of stacking prefixes.

Refused (ValueError): a model whose buffers live after the flatbuffer (``Buffer.offset``: models over 2 GB,
and the AI Edge Quantizer's int8 output of any size), since their absolute offsets would move, and a ``Model`` table with fields this module does not know.
"""
from __future__ import annotations

import struct

MAGIC = b"BENCHPV1"  # bytes 8..16 of a model written here; bytes 16..20: the original model's offset
ALIGN = 64
_MODEL_FIELDS = 8  # version, operator_codes, subgraphs, description, buffers, metadata_buffer, metadata, signature_defs
_OFFSET_FIELDS = (1, 2, 3, 5, 7)  # copied as references into the original (4 and 6 are rebuilt)


def _u32(b, pos: int) -> int:
    return struct.unpack_from("<I", b, pos)[0]


def _u16(b, pos: int) -> int:
    return struct.unpack_from("<H", b, pos)[0]


def _field(b, table: int, index: int) -> int | None:
    """Absolute position of field ``index`` of the table at ``table``, or None when absent."""
    vt = table - struct.unpack_from("<i", b, table)[0]
    vt_size = _u16(b, vt)
    slot = 4 + 2 * index
    if slot + 2 > vt_size:
        return None
    off = _u16(b, vt + slot)
    return table + off if off else None


def _deref(b, pos: int) -> int:
    return pos + _u32(b, pos)


def _vector(b, pos: int | None) -> list[int]:
    """Absolute positions of the elements' targets of a vector of tables referenced at ``pos``."""
    if pos is None:
        return []
    v = _deref(b, pos)
    return [_deref(b, v + 4 + 4 * i) for i in range(_u32(b, v))]


def _string(b, table: int, index: int) -> str | None:
    pos = _field(b, table, index)
    if pos is None:
        return None
    s = _deref(b, pos)
    return bytes(b[s + 4:s + 4 + _u32(b, s)]).decode("utf-8", "replace")


def _root(b) -> int:
    if len(b) < 8 or b[4:8] != b"TFL3":
        raise ValueError("not a TFLite flatbuffer (no TFL3 identifier)")
    return _u32(b, 0)


def original(b: bytes) -> bytes:
    """The model as the converter wrote it (a prefix written here removed)."""
    if b[8:16] == MAGIC:
        return b[_u32(b, 16):]
    return b


def read_metadata(b: bytes) -> dict[str, bytes]:
    """Every metadata entry of a model: name -> the bytes of its buffer."""
    root = _root(b)
    buffers = _vector(b, _field(b, root, 4))
    out = {}
    for entry in _vector(b, _field(b, root, 6)):
        name = _string(b, entry, 0)
        idx_pos = _field(b, entry, 1)
        idx = _u32(b, idx_pos) if idx_pos is not None else 0
        data = b""
        if idx < len(buffers):
            d = _field(b, buffers[idx], 0)
            if d is not None:
                v = _deref(b, d)
                data = bytes(b[v + 4:v + 4 + _u32(b, v)])
        out[name] = data
    return out


class _Prefix:
    """The bytes in front of the original model; positions are absolute in the new file."""

    def __init__(self):
        self.b = bytearray()
        self.fixups: list[tuple[int, object]] = []  # (position of a uoffset, target: int or a later label)
        self.labels: dict[str, int] = {}

    def pad(self, n: int) -> None:
        self.b += b"\0" * (-len(self.b) % n)

    def u32(self, v: int = 0) -> int:
        pos = len(self.b)
        self.b += struct.pack("<I", v)
        return pos

    def ref(self, target) -> None:
        """A uoffset to ``target`` (absolute position, or a label placed later)."""
        self.fixups.append((self.u32(), target))

    def label(self, name: str) -> None:
        self.labels[name] = len(self.b)

    def resolve(self, base: int) -> bytes:
        for pos, target in self.fixups:
            t = self.labels[target] if isinstance(target, str) else target + base
            struct.pack_into("<I", self.b, pos, t - pos)
        return bytes(self.b)


def write_metadata(b: bytes, name: str, data: bytes) -> bytes:
    """The model with metadata entry ``name`` set to ``data`` (replacing an entry of that name).

    The original model's bytes follow the prefix unchanged, so its graph, weights and signatures (and so its
    numerics) are those of the input.
    """
    model = original(b)
    root = _root(model)
    vt = root - struct.unpack_from("<i", model, root)[0]
    if (_u16(model, vt) - 4) // 2 > _MODEL_FIELDS:
        raise ValueError("TFLite Model table has fields this writer does not know (a newer schema)")
    buffers = _vector(model, _field(model, root, 4))
    for buf in buffers:
        off = _field(model, buf, 1)
        if off is not None and struct.unpack_from("<Q", model, off)[0] > 1:
            raise ValueError("TFLite model with buffers stored after the flatbuffer (Buffer.offset: a model over 2 GB, "
                             "or the AI Edge Quantizer's output): metadata not written")
    entries = [e for e in _vector(model, _field(model, root, 6)) if _string(model, e, 0) != name]

    # Two passes: the prefix's length (the original's new offset) is known only once it is laid out;
    # every reference into the original is relative to that base, resolved at the end.
    p = _Prefix()
    p.ref("root")
    p.b += b"TFL3" + MAGIC
    base_pos = p.u32()
    p.pad(4)
    present = [i for i in range(_MODEL_FIELDS) if i in (0, 4, 6) or _field(model, root, i) is not None]
    # vtable of the new root: every field gets a 4-byte slot in the table, in index order
    slots = {i: 4 + 4 * k for k, i in enumerate(present)}
    p.label("root_vt")
    p.b += struct.pack("<HH", 4 + 2 * _MODEL_FIELDS, 4 + 4 * len(present))
    p.b += b"".join(struct.pack("<H", slots.get(i, 0)) for i in range(_MODEL_FIELDS))
    p.pad(4)
    p.label("root")
    p.b += struct.pack("<i", p.labels["root"] - p.labels["root_vt"])
    for i in present:
        if i == 0:
            ver = _field(model, root, 0)
            p.u32(_u32(model, ver) if ver is not None else 3)
        elif i == 4:
            p.ref("buffers")
        elif i == 6:
            p.ref("metadata")
        else:
            p.ref(_deref(model, _field(model, root, i)))
    new_buffer_index = len(buffers)
    p.label("buffers")
    p.u32(len(buffers) + 1)
    for t in buffers:
        p.ref(t)
    p.ref("new_buffer")
    p.label("metadata")
    p.u32(len(entries) + 1)
    for t in entries:
        p.ref(t)
    p.ref("new_entry")
    p.label("entry_vt")  # Metadata { name (slot 4), buffer (slot 8) }
    p.b += struct.pack("<HHHH", 8, 12, 4, 8)
    p.label("new_entry")
    p.b += struct.pack("<i", p.labels["new_entry"] - p.labels["entry_vt"])
    p.ref("name")
    p.u32(new_buffer_index)
    p.label("buffer_vt")  # Buffer { data (slot 4) }
    p.b += struct.pack("<HHH", 6, 8, 4)
    p.pad(4)
    p.label("new_buffer")
    p.b += struct.pack("<i", p.labels["new_buffer"] - p.labels["buffer_vt"])
    p.ref("data")
    p.label("name")
    raw = name.encode()
    p.u32(len(raw))
    p.b += raw + b"\0"
    p.pad(16)
    p.b += b"\0" * 12  # the vector's length sits just before 16-aligned data
    p.label("data")
    p.u32(len(data))
    p.b += data
    p.pad(ALIGN)
    base = len(p.b)
    struct.pack_into("<I", p.b, base_pos, base)
    return p.resolve(base) + model
