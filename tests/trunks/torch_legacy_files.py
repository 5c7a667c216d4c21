"""Legacy torch.save files for the tests, written without PyTorch, and a child
process that reads files with `aesthal.trunks.torch_legacy` under a memory cap.

Imports only the standard library and numpy, so that the child (this file run
as a script) never loads TensorFlow: it imports the reader's module file
without running `aesthal/__init__.py`.
"""

from __future__ import annotations

import collections
import importlib
import json
import os
import pathlib
import pickle
import struct
import subprocess
import sys
import types

import numpy as np

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
# The child's address-space cap: the reader needs well under 100 MB for these
# files; a memory bomb that got through would hit this instead of the machine.
CHILD_MEMORY_BYTES = 2 << 30
LEGACY_MAGIC = 0x1950A86A20F9469CFC6C

# --- writing the legacy torch.save format, without PyTorch -------------------


class Storage:
    def __init__(self, key, array):
        self.key, self.array = key, array


class Tensor:
    """A tensor as torch.save pickles it; `offset`, `shape` and `strides` are
    written as given (ints, floats, bools, huge or negative values alike)."""

    def __init__(self, storage, offset, shape, strides):
        self.storage, self.offset = storage, offset
        self.shape, self.strides = shape, strides

    def __reduce__(self):
        return (
            sys.modules["torch._utils"]._rebuild_tensor_v2,
            (
                self.storage,
                self.offset,
                self.shape,
                self.strides,
                False,
                collections.OrderedDict(),
            ),
        )


_DTYPE_STORAGE = {np.dtype("float32"): "FloatStorage", np.dtype("int64"): "LongStorage"}


def write_legacy(path, tensors, extra_global=None):
    """Writes `{name: Tensor}` as torch.save's legacy format does.

    A fake `torch` / `torch._utils` lives in `sys.modules` only while pickling
    (pickle writes globals by module and name).
    """
    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")

    def _rebuild_tensor_v2(*args):  # only its name is pickled
        raise AssertionError

    _rebuild_tensor_v2.__module__ = "torch._utils"
    _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2
    storage_types = {}
    for name in _DTYPE_STORAGE.values():
        storage_types[name] = type(name, (), {"__module__": "torch"})
        setattr(torch, name, storage_types[name])
    torch._utils = utils
    storages = {}

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, Storage):
                storages[obj.key] = obj.array
                kind = storage_types[_DTYPE_STORAGE[obj.array.dtype]]
                return ("storage", kind, obj.key, "cpu", obj.array.size, None)
            return None

    saved = {m: sys.modules.get(m) for m in ("torch", "torch._utils")}
    sys.modules["torch"], sys.modules["torch._utils"] = torch, utils
    try:
        with open(path, "wb") as file:
            for header in (LEGACY_MAGIC, 1001, {"little_endian": True}):
                pickle.dump(header, file, protocol=2)
            state = collections.OrderedDict(tensors)
            if extra_global is not None:
                state["evil"] = extra_global
            Pickler(file, protocol=2).dump(state)
            keys = list(storages)
            pickle.dump(keys, file, protocol=2)
            for key in keys:
                array = storages[key]
                file.write(struct.pack("<q", array.size))
                file.write(array.astype(array.dtype.newbyteorder("<")).tobytes())
    finally:
        for module, value in saved.items():
            if value is None:
                sys.modules.pop(module, None)
            else:
                sys.modules[module] = value
    return path


def contiguous(key, array):
    """A Tensor holding `array` in a storage of its own, C order."""
    array = np.ascontiguousarray(array)
    strides = tuple(s // array.itemsize for s in array.strides)
    return Tensor(Storage(key, array.ravel()), 0, array.shape, strides)


# --- reading in a child process under a memory cap ---------------------------

# Arrays up to this many elements come back with their bytes; larger ones with
# their shape and dtype only.
_REPORTED_ELEMENTS = 4096


def read_in_capped_child(paths, work_dir, timeout_s=120):
    """Reads each file with the reader in a child process capped at
    `CHILD_MEMORY_BYTES`, so a crash is a result, not a dead test runner.

    Returns:
        `(returncode, {path: outcome}, output)`. An outcome is `{"error":
        type name, "is_value_error": bool, "message": str}` or `{"arrays":
        {name: {"type", "shape", "dtype", "hex" (the bytes, or None when
        large)}}}`; files after a crash have none. `returncode` is negative
        for a signal (-11: segmentation fault).
    """
    work_dir = pathlib.Path(work_dir)
    manifest, results = work_dir / "cases.json", work_dir / "results.jsonl"
    manifest.write_text(json.dumps([str(p) for p in paths]))
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    done = subprocess.run(
        [sys.executable, __file__, str(manifest), str(results)],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout_s,
    )
    outcomes = {}
    if results.exists():
        for line in results.read_text().splitlines():
            entry = json.loads(line)
            outcomes[entry.pop("path")] = entry
    return done.returncode, outcomes, done.stdout + done.stderr


def _import_reader():
    """aesthal/trunks/torch_legacy.py without `aesthal/__init__.py` (which
    imports TensorFlow): the two packages are stood in for by empty ones."""
    for name, folder in (
        ("aesthal", REPO_ROOT / "aesthal"),
        ("aesthal.trunks", REPO_ROOT / "aesthal" / "trunks"),
    ):
        package = types.ModuleType(name)
        package.__path__ = [str(folder)]
        sys.modules[name] = package
    return importlib.import_module("aesthal.trunks.torch_legacy")


def _child_main(manifest, results):
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (CHILD_MEMORY_BYTES, CHILD_MEMORY_BYTES))
    reader = _import_reader()
    heavy = sorted({"tensorflow", "keras"} & set(sys.modules))
    if heavy:
        print(f"the reader imported {heavy}", file=sys.stderr)
        return 3
    with open(results, "w") as out:
        for path in json.loads(pathlib.Path(manifest).read_text()):
            try:
                state = reader.read_torch_legacy_state_dict(path)
            except Exception as error:  # every kind is reported, and judged
                entry = {
                    "error": type(error).__name__,
                    "is_value_error": isinstance(error, ValueError),
                    "message": str(error)[:2000],
                }
            else:
                entry = {"arrays": {}}
                for name, array in state.items():
                    if not isinstance(array, np.ndarray):
                        entry["arrays"][str(name)] = {"type": type(array).__name__}
                        continue
                    small = array.size <= _REPORTED_ELEMENTS
                    entry["arrays"][str(name)] = {
                        "type": type(array).__name__,
                        "shape": list(array.shape),
                        "dtype": array.dtype.str,
                        "hex": array.tobytes().hex() if small else None,
                    }
            out.write(json.dumps({"path": path, **entry}) + "\n")
            out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(_child_main(*sys.argv[1:]))
