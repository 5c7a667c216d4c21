"""Tests for aesthal.trunks.torch_legacy: the legacy torch.save reader.

Files are written here without PyTorch (`torch_legacy_files.write_legacy`), or
crafted byte by byte. The crafted ones (issue 24: geometry that read outside
the buffer or crashed Python, memory bombs, deep nesting, bad strings,
truncations) and a seeded fuzz are read in a child process capped at 2 GB of
address space, so a crash is a failed test, not a dead test runner; every case
must give arrays that lie inside the file's storages, or a ValueError naming
the file.
"""

import hashlib
import itertools
import math
import pickle
import random
import struct

import numpy as np
import pytest
from torch_legacy_files import (
    LEGACY_MAGIC,
    Storage,
    Tensor,
    contiguous,
    read_in_capped_child,
    write_legacy,
)

from aesthal.trunks import torch_legacy as tl

# --- files written like torch.save's ---------------------------------------------


def test_reader_round_trips_strides_offsets_and_scalars(tmp_path):
    rng = np.random.default_rng(1)
    base = rng.normal(size=(4, 6)).astype("float32")
    shared = Storage(
        "0", np.concatenate([base.ravel(), rng.normal(size=5)]).astype("float32")
    )
    tensors = {
        "plain": contiguous("1", rng.normal(size=(2, 3, 3, 3)).astype("float32")),
        # a transposed view of storage 0: shape (6, 4), strides (1, 6)
        "transposed": Tensor(shared, 0, (6, 4), (1, 6)),
        # the tail of storage 0, past an offset
        "tail": Tensor(shared, 24, (5,), (1,)),
        # one row repeated: stride 0 (an expanded tensor), inside the caps
        "repeated": Tensor(shared, 6, (3, 6), (0, 1)),
        "empty": Tensor(shared, 29, (0, 7), (7, 1)),
        "count": Tensor(Storage("2", np.array([7], "int64")), 0, (), ()),
    }
    path = write_legacy(tmp_path / "w.pth", tensors)
    state = tl.read_torch_legacy_state_dict(str(path))
    assert list(state) == list(tensors)
    np.testing.assert_array_equal(
        state["plain"], tensors["plain"].storage.array.reshape(2, 3, 3, 3)
    )
    np.testing.assert_array_equal(state["transposed"], base.T)
    np.testing.assert_array_equal(state["tail"], shared.array[24:])
    np.testing.assert_array_equal(state["repeated"], np.tile(base[1], (3, 1)))
    assert state["empty"].shape == (0, 7)
    assert state["count"].shape == () and state["count"] == 7
    assert state["count"].dtype == np.int64
    # Copies, never views of the file's buffer.
    assert all(a.flags.owndata and a.flags.c_contiguous for a in state.values())


def test_reader_checks_sha256_and_format(tmp_path):
    path = write_legacy(
        tmp_path / "w.pth", {"a": contiguous("0", np.ones(3, "float32"))}
    )
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert tl.read_torch_legacy_state_dict(str(path), digest)["a"].sum() == 3
    with pytest.raises(ValueError, match="w.pth.*sha256"):
        tl.read_torch_legacy_state_dict(str(path), "0" * 64)
    zipped = tmp_path / "new.pth"
    zipped.write_bytes(b"PK\x03\x04 rest")
    with pytest.raises(ValueError, match="new.pth.*zip-format"):
        tl.read_torch_legacy_state_dict(str(zipped))
    short = tmp_path / "short.pth"
    short.write_bytes(path.read_bytes()[:-4])
    with pytest.raises(ValueError, match="short.pth.*truncated"):
        tl.read_torch_legacy_state_dict(str(short))


def test_reader_refuses_other_globals(tmp_path):
    import os

    path = write_legacy(
        tmp_path / "evil.pth",
        {"a": contiguous("0", np.ones(2, "float32"))},
        extra_global=os.getcwd,
    )
    with pytest.raises(ValueError, match="evil.pth.*refusing the global"):
        tl.read_torch_legacy_state_dict(str(path))


def test_reader_refuses_opcodes_a_state_dict_does_not_use(tmp_path):
    # INST ("i"), the protocol-0 way to call a class: not in a state dict.
    path = tmp_path / "inst.pth"
    path.write_bytes(
        pickle.dumps(LEGACY_MAGIC, protocol=2) + b"\x80\x02(ios\nsystem\n."
    )
    with pytest.raises(ValueError, match=r"inst.pth.*opcode b'i'.*refused"):
        tl.read_torch_legacy_state_dict(str(path))


def test_a_file_past_the_size_cap_is_refused_before_parsing(tmp_path):
    path = tmp_path / "big.pth"
    with open(path, "wb") as file:
        file.truncate(tl.MAX_FILE_BYTES + 1)  # sparse: nothing is written
    with pytest.raises(ValueError, match=r"big\.pth.*larger than 98664916 bytes"):
        tl.read_torch_legacy_state_dict(str(path))


def test_caps_keep_the_margin_over_the_real_files():
    # The lite2 file: 6,150,232 elements, the largest tensor 1,280,000
    # (docs/weights.md; test_efficientnet_lite reads the real files).
    assert tl.MAX_TOTAL_ELEMENTS == 4 * 6_150_232
    assert tl.MAX_TENSOR_ELEMENTS == 4 * 1_280_000


# --- crafted files, read in a capped child ----------------------------------------

_VALUES = np.arange(1, 17, dtype=np.float32)  # storage "0": 1.0 ... 16.0


def _one_tensor(offset, size, stride, values=_VALUES):
    return {"w": Tensor(Storage("0", values), offset, size, stride)}


def _pickles(*objects):
    return b"".join(pickle.dumps(o, protocol=2) for o in objects)


def _raw(state_pickle):
    """A file whose state-dict pickle is `state_pickle` (raw opcodes)."""
    return _pickles(LEGACY_MAGIC, 1001, {}) + state_pickle + _pickles([])


def _bad_utf8_key(path):
    write_legacy(path, {"ab": contiguous("0", np.ones(2, "float32"))})
    data = path.read_bytes()
    key = b"X\x02\x00\x00\x00ab"  # BINUNICODE "ab"
    assert data.count(key) == 1
    path.write_bytes(data.replace(key, b"X\x02\x00\x00\x00\xff\xfe"))


def _bytes(data):
    return lambda path: path.write_bytes(data)


def _tensors(tensors):
    return lambda path: write_legacy(path, tensors)


# name -> (how to write the file, what the ValueError must say after its name)
CRAFTED = {
    # The cases: each read outside the buffer, crashed or bombed.
    "negative_stride": (_tensors(_one_tensor(0, (16,), (-1,))), "stride -1"),
    "negative_stride_4m": (_tensors(_one_tensor(0, (4_000_000,), (-1,))), "stride -1"),
    "opposite_strides": (
        _tensors(_one_tensor(0, (2, 2), (10**8, -(10**8)))),
        "stride -100000000",
    ),
    "float_strides": (
        _tensors(_one_tensor(0, (2, 2), (1e8, -1e8))),
        "stride 100000000.0",
    ),
    "stride_0_memory_bomb": (
        _tensors(_one_tensor(0, (2**29,), (0,), np.ones(1, np.float32))),
        "more than 5120000 elements",
    ),
    "float_offset": (_tensors(_one_tensor(0.0, (2,), (1,))), "offset 0.0"),
    "bool_offset": (_tensors(_one_tensor(True, (2,), (1,))), "offset True"),
    "float_size": (_tensors(_one_tensor(0, (2.0,), (1,))), "size 2.0"),
    "bool_stride": (_tensors(_one_tensor(0, (2,), (True,))), "stride True"),
    "huge_offset": (_tensors(_one_tensor(2**70, (2,), (1,))), "outside its storage"),
    "huge_size": (_tensors(_one_tensor(0, (2**62,), (1,))), "more than 5120000"),
    "huge_stride": (_tensors(_one_tensor(0, (2,), (2**64,))), "outside its storage"),
    "past_the_end": (_tensors(_one_tensor(10, (8,), (1,))), "indices 10 to 17"),
    "nine_dims": (_tensors(_one_tensor(0, (1,) * 9, (1,) * 9)), "at most 8"),
    "size_stride_mismatch": (_tensors(_one_tensor(0, (2, 2), (1,))), "as many"),
    # Five tensors of 5M elements each, every one within the per-tensor cap,
    # from a one-element storage: over the cap per file.
    "total_memory_bomb": (
        _tensors(
            {
                f"w{k}": Tensor(
                    Storage("0", np.ones(1, np.float32)), 0, (5_000_000,), (0,)
                )
                for k in range(5)
            }
        ),
        "more than 24600928 elements",
    ),
    # 200,000 nested 1-tuples as a persistent id (the old reader's repr of it
    # raised RecursionError).
    "deep_nesting": (
        _bytes(_raw(b"\x80\x02N" + b"\x85" * 200_000 + b"Q.")),
        "nested more than 16 deep",
    ),
    "bad_utf8_key": (_bad_utf8_key, "not valid utf-8"),
    "too_many_opcodes": (
        _bytes(_raw(b"\x80\x02" + b"N" * 60_000 + b".")),
        "more than 55724 opcodes",
    ),
    "list_inside_itself": (_bytes(_raw(b"\x80\x02]q\x00h\x00a.")), "inside itself"),
    "tuple_of_nothing": (_bytes(_raw(b"\x80\x02\x87.")), "too few items"),
    "dict_keyed_by_a_tuple": (
        _bytes(_raw(b"\x80\x02}N\x85Ns.")),
        "a dict key is a tuple",
    ),
    "storage_key_forged_as_string": (
        _bytes(
            _raw(
                b"\x80\x02}X\x01\x00\x00\x00wctorch._utils\n_rebuild_tensor_v2\n"
                b"(X\x01\x00\x00\x000K\x00K\x01\x85K\x01\x85tRs."
            )
        ),
        "_rebuild_tensor_v2 is called with",
    ),
}


def _truncations():
    """Every prefix of a small file with a strided, an offset and a 0-d tensor."""
    shared = Storage("0", np.arange(1, 9, dtype=np.float32))
    tensors = {
        "t": Tensor(shared, 0, (2, 4), (1, 2)),
        "tail": Tensor(shared, 5, (3,), (1,)),
        "count": Tensor(Storage("1", np.array([7], "int64")), 0, (), ()),
    }
    return tensors


@pytest.fixture(scope="module")
def crafted(tmp_path_factory):
    """`{case: (path, outcome)}` for `CRAFTED` and every truncation, read by
    one capped child; with `returncode` and the child's output."""
    folder = tmp_path_factory.mktemp("crafted")
    paths = {}
    for name, (write, _) in CRAFTED.items():
        paths[name] = folder / f"{name}.pth"
        write(paths[name])
    whole = write_legacy(folder / "whole.pth", _truncations()).read_bytes()
    for cut in range(len(whole)):
        paths[f"cut{cut}"] = folder / f"cut{cut}.pth"
        paths[f"cut{cut}"].write_bytes(whole[:cut])
    code, outcomes, output = read_in_capped_child(list(paths.values()), folder)
    return {n: (str(p), outcomes.get(str(p))) for n, p in paths.items()}, code, output


def _refusal(crafted, name):
    cases, code, output = crafted
    path, outcome = cases[name]
    assert outcome is not None, (
        f"no result for {name}: the child exited with {code} (-11: segmentation "
        f"fault) before it; its output ends {output[-800:]!r}"
    )
    assert "arrays" not in outcome, f"{name} was read: {outcome['arrays']}"
    assert outcome["is_value_error"], outcome
    assert outcome["message"].startswith(repr(path)), outcome["message"]
    return outcome["message"]


@pytest.mark.parametrize("name", list(CRAFTED))
def test_crafted_file_is_refused_naming_the_file_and_the_problem(crafted, name):
    message = _refusal(crafted, name)
    assert CRAFTED[name][1] in message, message


def test_every_truncation_is_refused_naming_the_file(crafted):
    cases, code, _ = crafted
    cuts = [name for name in cases if name.startswith("cut")]
    assert len(cuts) > 400  # the file is 428 bytes
    for name in cuts:
        assert "truncated" in _refusal(crafted, name), name
    assert code == 0


def test_the_reader_imports_without_tensorflow(crafted):
    # The child stops with 3 when importing the reader brought TensorFlow in.
    _, code, output = crafted
    assert code == 0, output[-2000:]


# --- a seeded fuzz: random geometry, random byte mutations ------------------------

_EDGES = (-1, -2, -(2**31), 2**29, 2**31, 2**62, 2**64, 10**30, 4_000_000)
_NON_INTS = (1.0, 1e8, -1e8, 0.5, True, False)
_STORAGE = np.arange(1, 25, dtype=np.float32)  # 24 distinct values


def _draw(rng, largest):
    roll = rng.random()
    if roll < 0.1:
        return rng.choice(_EDGES)
    if roll < 0.15:
        return rng.choice(_NON_INTS)
    return rng.randint(0, largest)


def _expected(offset, size, stride):
    """The values the view holds, element by element, or None where the reader
    must refuse (not plain non-negative ints, past a cap, or an index outside
    the storage)."""

    def plain(value):
        return type(value) is int and value >= 0

    values = list(_STORAGE)
    geometry_ok = (
        plain(offset)
        and all(map(plain, size))
        and all(map(plain, stride))
        and len(size) == len(stride) <= tl.MAX_DIMS
    )
    if not geometry_ok or max(size, default=0) > tl.MAX_TENSOR_ELEMENTS:
        return None
    numel = math.prod(size)
    if numel > tl.MAX_TENSOR_ELEMENTS:
        return None
    if numel == 0:
        return [] if offset <= len(values) else None
    high = offset + sum((n - 1) * s for n, s in zip(size, stride, strict=True))
    if high >= len(values):
        return None
    if numel > 4096:
        return "large"
    out = []
    for index in itertools.product(*(range(n) for n in size)):
        position = offset + sum(k * s for k, s in zip(index, stride, strict=True))
        assert 0 <= position < len(values)
        out.append(values[position])
    return out


def _geometry_cases(rng, folder, count):
    cases = {}
    while len(cases) < count:
        ndim = rng.choice((0, 1, 1, 2, 2, 3, 9))
        size = tuple(_draw(rng, 5) for _ in range(ndim))
        stride = tuple(_draw(rng, 8) for _ in range(ndim))
        if rng.random() < 0.05:
            stride = stride[:-1] if stride else (1,)
        offset = _draw(rng, 24)
        expected = _expected(offset, size, stride)
        if expected == "large":  # valid but too big to check by hand
            continue
        path = folder / f"geometry{len(cases)}.pth"
        write_legacy(path, {"w": Tensor(Storage("0", _STORAGE), offset, size, stride)})
        cases[str(path)] = (offset, size, stride, expected)
    return cases


def _mutation_cases(rng, folder, count):
    base = write_legacy(folder / "base.pth", _truncations()).read_bytes()
    edges = (
        b"\xff\xff\xff\x7f",
        b"\x00\x00\x00\x80",
        struct.pack("<q", 2**62),
        b"\xff",
    )
    cases = {}
    for k in range(count):
        data = bytearray(base)
        kind = rng.choice(("set", "set", "edge", "insert", "delete", "cut"))
        at = rng.randrange(len(data))
        if kind == "set":
            for _ in range(rng.randint(1, 3)):
                data[rng.randrange(len(data))] = rng.randrange(256)
        elif kind == "edge":
            edge = rng.choice(edges)
            data[at : at + len(edge)] = edge
        elif kind == "insert":
            data[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif kind == "delete":
            del data[at : at + rng.randint(1, 8)]
        else:
            del data[at:]
        path = folder / f"mutation{k}.pth"
        path.write_bytes(bytes(data))
        cases[str(path)] = bytes(data)
    return cases


def _read_back(entry):
    """An array reported by the child."""
    dtype = np.dtype(entry["dtype"])
    return np.frombuffer(bytes.fromhex(entry["hex"]), dtype).reshape(entry["shape"])


def test_seeded_fuzz_of_geometry_and_bytes_reads_inside_or_refuses(tmp_path):
    rng = random.Random(24)
    geometry = _geometry_cases(rng, tmp_path, 300)
    mutations = _mutation_cases(rng, tmp_path, 300)
    code, outcomes, output = read_in_capped_child(
        list(geometry) + list(mutations), tmp_path
    )
    assert code == 0 and len(outcomes) == 600, (code, len(outcomes), output[-2000:])
    refused = read = 0
    for path, outcome in outcomes.items():
        if "error" in outcome:
            assert outcome["is_value_error"], (path, outcome)
            assert outcome["message"].startswith(repr(path)), outcome["message"]
            refused += 1
            if path in geometry:
                assert geometry[path][3] is None, (geometry[path], outcome)
            continue
        read += 1
        arrays = outcome["arrays"]
        assert all(a["type"] == "ndarray" for a in arrays.values()), arrays
        sizes = [math.prod(a["shape"]) for a in arrays.values()]
        assert max(sizes, default=0) <= tl.MAX_TENSOR_ELEMENTS
        assert sum(sizes) <= tl.MAX_TOTAL_ELEMENTS
        if path in geometry:
            offset, size, stride, expected = geometry[path]
            assert expected is not None, (offset, size, stride, "was read")
            got = _read_back(arrays["w"])
            assert got.shape == size and got.dtype == np.float32
            assert got.ravel().tolist() == expected, (offset, size, stride)
        else:
            # Every element's bytes come from the file: nothing was read from
            # outside it.
            data = mutations[path]
            for entry in arrays.values():
                if entry["hex"] is not None:
                    array = _read_back(entry)
                    assert all(x.tobytes() in data for x in array.ravel()), path
    # Both outcomes occur often: the fuzz is not all refusals.
    assert refused > 150 and read > 100, (refused, read)
