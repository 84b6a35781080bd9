"""Tensor file comparison: formats, per-tensor facts, chunking, and bad input."""

from __future__ import annotations

import json
import mmap
import struct
import zipfile
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from toolkit.compare import Tolerance, TolerancePolicy, compare_arrays, compare_tensor_files
from toolkit.compare import tensors as tensors_module
from toolkit.errors import UserError

RNG = np.random.default_rng(0)


def write_safetensors(path: Path, tensors: dict[str, tuple[str, list[int], bytes]]) -> Path:
    """Write the safetensors format by hand: u64 header length, JSON header, raw data."""
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    blobs, offset = [], 0
    for name, (dtype, shape, data) in tensors.items():
        header[name] = {
            "dtype": dtype,
            "shape": shape,
            "data_offsets": [offset, offset + len(data)],
        }
        blobs.append(data)
        offset += len(data)
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + b"".join(blobs))
    return path


def bfloat16_bytes(values: np.ndarray) -> bytes:
    return (values.astype(np.float32).view(np.uint32) >> 16).astype("<u2").tobytes()


def mapped_buffer(array: np.ndarray) -> mmap.mmap | None:
    base: Any = array
    while base is not None and not isinstance(base, mmap.mmap):
        base = base.obj if isinstance(base, memoryview) else getattr(base, "base", None)
    return base


def weights() -> dict[str, np.ndarray]:
    return {
        "conv.weight": RNG.standard_normal((8, 3, 3, 3)).astype(np.float32),
        "conv.bias": RNG.standard_normal(8).astype(np.float32),
        "steps": np.array([1000], dtype=np.int64),
    }


# --- formats ------------------------------------------------------------------------------------


def test_npy_files(tmp_path: Path) -> None:
    a = RNG.standard_normal(1000).astype(np.float32)
    b = a.copy()
    b[[3, 500]] += np.float32(1.0)
    np.save(tmp_path / "a.npy", a)
    np.save(tmp_path / "b.npy", b)
    np.save(tmp_path / "c.npy", a)
    diff = compare_tensor_files(tmp_path / "a.npy", tmp_path / "b.npy")
    (tensor,) = diff.tensors
    assert tensor.name == "arr_0"
    assert (tensor.dtype_a, tensor.shape_a, tensor.elements) == ("float32", (1000,), 1000)
    assert tensor.differing == 2 and tensor.fraction_differing == 0.002
    assert tensor.max_abs == pytest.approx(1.0, rel=1e-6)
    assert diff.verdict == tensor.verdict == "diverged"
    assert compare_tensor_files(tmp_path / "a.npy", tmp_path / "c.npy").verdict == "identical"


def test_npz_stored_members_are_memory_mapped_at_the_right_offset(tmp_path: Path) -> None:
    arrays = weights()
    np.savez(tmp_path / "w.npz", **arrays)
    with ExitStack() as stack:
        entries = tensors_module._open(tmp_path / "w.npz", stack)
        for name, array in arrays.items():
            raw = entries[name].open()
            assert mapped_buffer(raw.data) is not None, f"{name} was not memory-mapped"
            assert raw.data.tobytes() == array.tobytes()
            del raw


def test_npz_stored_and_compressed_hold_the_same_tensors(tmp_path: Path) -> None:
    arrays = weights()
    np.savez(tmp_path / "stored.npz", **arrays)
    np.savez_compressed(tmp_path / "compressed.npz", **arrays)
    with zipfile.ZipFile(tmp_path / "compressed.npz") as archive:
        assert {i.compress_type for i in archive.infolist()} == {zipfile.ZIP_DEFLATED}
    with ExitStack() as stack:
        raw = tensors_module._open(tmp_path / "compressed.npz", stack)["conv.weight"].open()
        assert mapped_buffer(raw.data) is None  # inflated in memory, one member at a time
        assert raw.data.tobytes() == arrays["conv.weight"].tobytes()
    diff = compare_tensor_files(tmp_path / "stored.npz", tmp_path / "compressed.npz")
    assert diff.verdict == "identical"
    assert diff.summary.tensors_compared == 3
    changed = dict(arrays, **{"conv.bias": arrays["conv.bias"] * 2})
    np.savez_compressed(tmp_path / "changed.npz", **changed)
    diff = compare_tensor_files(tmp_path / "stored.npz", tmp_path / "changed.npz")
    by_name = {t.name: t for t in diff.tensors}
    assert by_name["conv.bias"].verdict == "diverged"
    assert by_name["conv.weight"].verdict == "identical"
    assert diff.summary.tensors_differing == 1


def test_npy_and_npz_compare_across_formats(tmp_path: Path) -> None:
    a = np.arange(10, dtype=np.float64)
    np.save(tmp_path / "a.npy", a)
    np.savez(tmp_path / "b.npz", a)  # a positional array is called arr_0
    assert compare_tensor_files(tmp_path / "a.npy", tmp_path / "b.npz").verdict == "identical"


def test_safetensors_written_by_hand(tmp_path: Path) -> None:
    w = RNG.standard_normal((4, 5)).astype(np.float32)
    bf = np.array([1.0, -2.5, 3.0], dtype=np.float32)
    ids = np.array([1, 2, 2**60], dtype="<i8")
    a = write_safetensors(
        tmp_path / "a.safetensors",
        {
            "w": ("F32", [4, 5], w.tobytes()),
            "bf": ("BF16", [3], bfloat16_bytes(bf)),
            "ids": ("I64", [3], ids.tobytes()),
        },
    )
    bf_bits = np.frombuffer(bfloat16_bytes(bf), "<u2").copy()
    bf_bits[1] += 1  # the next bfloat16 after -2.5 in magnitude: -2.515625
    ids_b = ids.copy()
    ids_b[2] += 1  # 2**60 + 1 rounds to 2**60 in float64; it must still count as a difference
    b = write_safetensors(
        tmp_path / "b.safetensors",
        {
            "ids": ("I64", [3], ids_b.tobytes()),
            "w": ("F32", [4, 5], w.tobytes()),
            "bf": ("BF16", [3], bf_bits.tobytes()),
        },
    )
    diff = compare_tensor_files(a, b)
    by_name = {t.name: t for t in diff.tensors}
    assert [t.name for t in diff.tensors] == ["w", "bf", "ids"]
    assert by_name["w"].verdict == "identical"
    bf_diff = by_name["bf"]
    assert (bf_diff.dtype_a, bf_diff.differing, bf_diff.max_ulp) == ("bfloat16", 1, 1)
    assert bf_diff.max_abs == pytest.approx(0.015625)
    assert bf_diff.verdict == "within_tolerance"  # bfloat16's default rtol is 1.6e-2
    ids_diff = by_name["ids"]
    assert (ids_diff.differing, ids_diff.max_ulp, ids_diff.verdict) == (1, None, "diverged")


def test_safetensors_float8_is_compared_bit_for_bit(tmp_path: Path) -> None:
    a = write_safetensors(tmp_path / "a.safetensors", {"q": ("F8_E4M3", [4], bytes([1, 2, 3, 4]))})
    b = write_safetensors(tmp_path / "b.safetensors", {"q": ("F8_E4M3", [4], bytes([1, 2, 9, 4]))})
    (q,) = compare_tensor_files(a, b).tensors
    assert (q.dtype_a, q.differing, q.verdict) == ("float8_e4m3fn", 1, "diverged")
    assert q.max_abs is None and q.note == "float8_e4m3fn is compared bit for bit only"


def test_torch_state_dicts(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    model = {
        "layer.weight": torch.randn(16, 8),
        "layer.bias": torch.randn(16, dtype=torch.bfloat16),
        "num_batches": torch.tensor(7),
    }
    torch.save({"model": model, "epoch": 3}, tmp_path / "a.pt")
    changed = dict(model, **{"layer.weight": model["layer.weight"] + 1e-3})
    torch.save({"model": changed, "epoch": 3}, tmp_path / "b.pt")
    diff = compare_tensor_files(tmp_path / "a.pt", tmp_path / "b.pt")
    by_name = {t.name: t for t in diff.tensors}
    assert set(by_name) == {"model.layer.weight", "model.layer.bias", "model.num_batches"}
    assert by_name["model.layer.bias"].dtype_a == "bfloat16"
    assert by_name["model.layer.bias"].verdict == "identical"
    weight = by_name["model.layer.weight"]
    assert weight.verdict == "diverged" and weight.max_abs == pytest.approx(1e-3, rel=1e-3)
    assert diff.verdict == "diverged"


def test_torch_transposed_tensor_compares_by_logical_element(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    t = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    torch.save({"w": t.t()}, tmp_path / "a.pt")  # a non-contiguous view
    torch.save({"w": t.t().contiguous()}, tmp_path / "b.pt")
    assert compare_tensor_files(tmp_path / "a.pt", tmp_path / "b.pt").verdict == "identical"


def test_without_torch_two_torch_files_are_compared_byte_for_byte(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tensors_module, "_torch", lambda: None)
    (tmp_path / "a.pt").write_bytes(b"same bytes")
    (tmp_path / "b.pt").write_bytes(b"same bytes")
    (tmp_path / "c.pt").write_bytes(b"other bytes")
    same = compare_tensor_files(tmp_path / "a.pt", tmp_path / "b.pt")
    assert same.verdict == "identical"
    assert "torch is not installed" in same.issues[0]
    assert compare_tensor_files(tmp_path / "a.pt", tmp_path / "c.pt").verdict == "diverged"


def test_without_torch_a_torch_file_against_another_format_is_a_user_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tensors_module, "_torch", lambda: None)
    np.save(tmp_path / "a.npy", np.zeros(3))
    (tmp_path / "b.pt").write_bytes(b"anything")
    with pytest.raises(UserError, match=r"b\.pt: torch is not installed"):
        compare_tensor_files(tmp_path / "a.npy", tmp_path / "b.pt")


# --- what is reported per tensor ------------------------------------------------------------------


def test_keys_dtypes_and_shapes_that_differ(tmp_path: Path) -> None:
    np.savez(
        tmp_path / "a.npz",
        same=np.ones(3, np.float32),
        gone=np.ones(2),
        retyped=np.ones(2, np.float32),
        reshaped=np.ones((2, 3)),
    )
    np.savez(
        tmp_path / "b.npz",
        same=np.ones(3, np.float32),
        retyped=np.ones(2, np.float16),
        reshaped=np.ones((3, 2)),
        new=np.ones(1),
    )
    diff = compare_tensor_files(tmp_path / "a.npz", tmp_path / "b.npz")
    notes = {t.name: (t.note, t.verdict) for t in diff.tensors}
    assert notes == {
        "same": (None, "identical"),
        "gone": ("only in A", "diverged"),
        "retyped": ("dtype differs: float32 vs float16", "diverged"),
        "reshaped": ("shape differs: (2, 3) vs (3, 2)", "diverged"),
        "new": ("only in B", "diverged"),
    }
    s = diff.summary
    assert (s.tensors_compared, s.only_in_a, s.only_in_b, s.mismatched) == (1, 1, 1, 2)
    assert (s.tensors_diverged, s.tensors_differing) == (4, 0)
    assert diff.verdict == "diverged"


def test_nan_and_inf_mismatches() -> None:
    nan, inf = np.nan, np.inf
    a = np.array([nan, 1.0, inf, 2.0, nan, inf, 5.0], dtype=np.float32)
    b = np.array([1.0, nan, 3.0, -inf, nan, inf, 5.5], dtype=np.float32)
    diff = compare_arrays("x", a, b)
    assert diff.nan_mismatches == 2
    assert diff.inf_mismatches == 2
    assert diff.differing == 5  # equal NaNs and equal infinities are the same bits
    assert diff.max_abs == 0.5  # only the finite pair counts
    assert diff.beyond_tolerance == 5
    assert diff.verdict == "diverged"


def test_nans_with_different_payloads_agree_in_value_but_not_in_bits() -> None:
    a = np.array([0x7FC00000, 0x3F800000], dtype=np.uint32).view(np.float32)
    b = np.array([0x7FC00001, 0x3F800000], dtype=np.uint32).view(np.float32)
    diff = compare_arrays("x", a, b)
    assert (diff.differing, diff.nan_mismatches, diff.verdict) == (1, 0, "within_tolerance")


def test_one_ulp_apart_is_within_float32_tolerance() -> None:
    a = np.array([1.0, 2.0, 3.0], dtype=np.float32)
    b = a.copy()
    b[1] = np.nextafter(b[1], np.float32(3))
    diff = compare_arrays("x", a, b)
    assert (diff.max_ulp, diff.differing, diff.verdict) == (1, 1, "within_tolerance")
    assert diff.max_rel == pytest.approx(2.0**-22 / (2 + 2.0**-22))


def test_integers_compare_exactly_by_default() -> None:
    diff = compare_arrays("labels", np.array([1, 2, 3]), np.array([1, 2, 4]))
    assert (diff.max_abs, diff.max_ulp, diff.verdict) == (1.0, None, "diverged")
    loose = compare_arrays("labels", [1, 2, 3], [1, 2, 4], Tolerance(rtol=0.5, atol=0.0))
    assert loose.verdict == "within_tolerance"


def test_policy_patterns_choose_tolerance_per_tensor(tmp_path: Path) -> None:
    a = np.ones(4, np.float32)
    np.savez(tmp_path / "a.npz", **{"emb.weight": a, "head.weight": a})
    np.savez(tmp_path / "b.npz", **{"emb.weight": a * 1.001, "head.weight": a * 1.001})
    policy = TolerancePolicy.from_mapping({"emb.*": Tolerance(rtol=1e-2, atol=0.0)})
    diff = compare_tensor_files(tmp_path / "a.npz", tmp_path / "b.npz", policy)
    verdicts = {t.name: (t.verdict, t.tolerance.rtol) for t in diff.tensors}
    assert verdicts == {
        "emb.weight": ("within_tolerance", 1e-2),
        "head.weight": ("diverged", 1.3e-6),
    }


def test_fortran_and_c_order_files_compare_by_logical_element(tmp_path: Path) -> None:
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    np.save(tmp_path / "c.npy", a)
    np.save(tmp_path / "f.npy", np.asfortranarray(a))
    assert compare_tensor_files(tmp_path / "c.npy", tmp_path / "f.npy").verdict == "identical"
    b = a.copy()
    b[0, 1] = 100
    np.save(tmp_path / "f2.npy", np.asfortranarray(b))
    (t,) = compare_tensor_files(tmp_path / "c.npy", tmp_path / "f2.npy").tensors
    assert (t.differing, t.max_abs) == (1, 99.0)


def test_byte_order_is_part_of_the_dtype(tmp_path: Path) -> None:
    np.save(tmp_path / "le.npy", np.arange(3, dtype="<f4"))
    np.save(tmp_path / "be.npy", np.arange(3, dtype=">f4"))
    (t,) = compare_tensor_files(tmp_path / "le.npy", tmp_path / "be.npy").tensors
    assert t.note == "dtype differs: float32 vs float32 (big-endian)"
    bigger = np.arange(3, dtype=">f4")
    bigger[2] = 2.5
    np.save(tmp_path / "be2.npy", bigger)
    (t,) = compare_tensor_files(tmp_path / "be.npy", tmp_path / "be2.npy").tensors
    assert (t.differing, t.max_abs) == (1, 0.5)


def test_empty_and_scalar_tensors(tmp_path: Path) -> None:
    np.savez(tmp_path / "a.npz", empty=np.zeros((0, 4)), scalar=np.float64(1.5))
    np.savez(tmp_path / "b.npz", empty=np.zeros((0, 4)), scalar=np.float64(2.5))
    diff = compare_tensor_files(tmp_path / "a.npz", tmp_path / "b.npz")
    by_name = {t.name: t for t in diff.tensors}
    assert (by_name["empty"].elements, by_name["empty"].verdict) == (0, "identical")
    assert (by_name["scalar"].elements, by_name["scalar"].max_abs) == (1, 1.0)


# --- chunking ----------------------------------------------------------------------------------


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 64, 1 << 20])
def test_chunk_boundaries_do_not_change_the_result(tmp_path: Path, chunk: int) -> None:
    a = RNG.standard_normal(100).astype(np.float32)
    b = a.copy()
    for index in (2, 3, 6, 7, 63, 64, 99):  # on both sides of several chunk boundaries
        b[index] += np.float32(index)
    b[50] = np.nan
    np.save(tmp_path / "a.npy", a)
    np.save(tmp_path / "b.npy", b)
    (t,) = compare_tensor_files(
        tmp_path / "a.npy", tmp_path / "b.npy", chunk_elements=chunk
    ).tensors
    assert (t.differing, t.nan_mismatches, t.beyond_tolerance) == (8, 1, 8)
    assert t.max_abs == pytest.approx(99.0, rel=1e-5)


def test_slices_inside_a_differing_chunk_see_every_difference() -> None:
    # Differing chunks are examined in slices of 8192 elements; put differences on their edges.
    a = RNG.standard_normal(3 * 8192 + 5).astype(np.float64)
    b = a.copy()
    edges = [0, 8191, 8192, 16383, 16384, 3 * 8192 + 4]
    b[edges] += np.arange(1.0, 7.0)
    b[10_000] = np.inf
    default = compare_arrays("x", a, b)
    assert (default.differing, default.inf_mismatches, default.max_abs) == (7, 1, 6.0)
    assert compare_arrays("x", a, b, chunk_elements=5) == default


@settings(max_examples=100, deadline=None)
@given(
    hnp.arrays(np.float32, st.integers(1, 60), elements=st.floats(width=32, allow_nan=True)),
    st.data(),
    st.integers(1, 70),
)
def test_any_chunk_size_gives_the_same_facts(
    a: np.ndarray, data: st.DataObject, chunk: int
) -> None:
    b = data.draw(hnp.arrays(np.float32, a.shape, elements=st.floats(width=32, allow_nan=True)))
    mixed = np.where(data.draw(hnp.arrays(np.bool_, a.shape)), a, b)
    whole = compare_arrays("x", a, mixed, chunk_elements=len(a))
    chunked = compare_arrays("x", a, mixed, chunk_elements=chunk)
    assert chunked == whole


# --- bad input ---------------------------------------------------------------------------------


def test_unknown_format_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("hello")
    with pytest.raises(UserError, match=r"a\.txt: unknown tensor file format '\.txt'"):
        compare_tensor_files(tmp_path / "a.txt", tmp_path / "a.txt")


def test_missing_file_names_the_file(tmp_path: Path) -> None:
    np.save(tmp_path / "a.npy", np.zeros(2))
    with pytest.raises(UserError, match=r"cannot read .*missing\.npy"):
        compare_tensor_files(tmp_path / "a.npy", tmp_path / "missing.npy")


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("garbage.npy", b"this is not numpy"),
        ("garbage.npz", b"PK\x03\x04 not really a zip"),
        ("garbage.safetensors", b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}      "),
        ("huge.safetensors", b"\xff" * 8 + b"{}"),
        ("empty.safetensors", b""),
        ("list.safetensors", struct.pack("<Q", 2) + b"[]"),
    ],
)
def test_corrupt_files_are_user_errors_naming_the_file(
    tmp_path: Path, name: str, content: bytes
) -> None:
    (tmp_path / name).write_bytes(content)
    with pytest.raises(UserError, match=f"{name} is not a valid"):
        compare_tensor_files(tmp_path / name, tmp_path / name)


def test_truncated_npy_is_a_user_error(tmp_path: Path) -> None:
    np.save(tmp_path / "full.npy", np.arange(1000, dtype=np.float64))
    data = (tmp_path / "full.npy").read_bytes()
    (tmp_path / "cut.npy").write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match=r"cut\.npy is not a valid \.npy file: .*past the end"):
        compare_tensor_files(tmp_path / "full.npy", tmp_path / "cut.npy")


def test_safetensors_with_inconsistent_sizes_is_a_user_error(tmp_path: Path) -> None:
    path = write_safetensors(tmp_path / "bad.safetensors", {"w": ("F32", [4], b"\x00" * 12)})
    with pytest.raises(UserError, match="12 bytes do not hold F32"):
        compare_tensor_files(path, path)


def test_object_arrays_are_refused(tmp_path: Path) -> None:
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(UserError, match="Python objects"):
        compare_tensor_files(tmp_path / "obj.npy", tmp_path / "obj.npy")
