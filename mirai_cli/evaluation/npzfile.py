"""Reading .npz files without loading what is not needed.

ADM sample and reference batches are written with `np.savez` (no compression), so `arr_0` can be
memory-mapped straight out of the zip: 50,000 images at 256 px (~10 GB) need not fit in memory."""

from __future__ import annotations

import struct
import zipfile
from pathlib import Path

import numpy as np

from mirai_cli.errors import MiraiError


def npz_keys(path: str | Path) -> list[str]:
    try:
        with zipfile.ZipFile(path) as zf:
            return [n.removesuffix(".npy") for n in zf.namelist()]
    except (OSError, zipfile.BadZipFile) as e:
        raise MiraiError(f"cannot read {path}: not a valid .npz file ({e})") from e


def _memmap_member(path: Path, member: str) -> np.ndarray | None:
    """Memory-map an uncompressed member; None when it is compressed or not a plain array."""
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(member)
        if info.compress_type != zipfile.ZIP_STORED:
            return None
        with open(path, "rb") as f:
            f.seek(info.header_offset)
            local = f.read(30)
            if local[:4] != b"PK\x03\x04":
                return None
            name_len, extra_len = struct.unpack("<HH", local[26:30])
            data_start = info.header_offset + 30 + name_len + extra_len
            f.seek(data_start)
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
            else:
                return None
            if dtype.hasobject:
                return None
            offset = f.tell()
    if int(np.prod(shape)) == 0:
        return np.zeros(shape, dtype=dtype)
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape, order="F" if fortran else "C")


def load_npz_array(path: str | Path, key: str, mmap: bool = True) -> np.ndarray:
    """One array of an .npz, memory-mapped when stored uncompressed (else read fully)."""
    path = Path(path)
    member = key + ".npy"
    try:
        if mmap:
            arr = _memmap_member(path, member)
            if arr is not None:
                return arr
        with np.load(path, allow_pickle=False) as z:
            return z[key]
    except KeyError as e:
        raise MiraiError(f"{path} has no array '{key}' (it holds: {', '.join(npz_keys(path)) or 'nothing'})") from e
    except (OSError, ValueError, zipfile.BadZipFile) as e:
        raise MiraiError(f"cannot read '{key}' from {path}: {e}") from e
