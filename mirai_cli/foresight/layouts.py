"""Which student position is aligned with which teacher feature, per foresight head.

The whole index convention lives in `aligned_pairs` (docs/method.md, "Foresight"):

* cells c = 0..N-1 in raster order, cell c = (c // w, c % w);
* the student position whose input token is cell g is sequence position g + 1 (g = 0..N-2; the class
  position 0 has seen no cell and cell N-1 is never an input);
* head k with offset o aligns that student position with the teacher's feature at cell g + o;
* an EMA teacher (a causal GPT) holds the feature of cell c at its sequence position c + 1, so it has
  cells 0..N-2; a frozen encoder holds cells 0..N-1 at index c;
* align_class (an EMA teacher only, as the paper's code): every head also aligns the student's sequence
  position 0 (the class token) with the teacher's position 0, one extra pair first in each head.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import torch

from mirai_cli.errors import MiraiError

Layout = Literal["2d", "1d"]
Border = Literal["drop", "wrap"]
TeacherSpace = Literal["sequence", "cells"]

# Paper default order (K=3 takes the first three); the rest as in the public code.
OFFSETS_2D: tuple[tuple[int, int], ...] = (
    (0, 0), (0, 1), (1, 0), (1, 1), (0, 2), (1, 2), (2, 2), (2, 1), (2, 0),
)


@dataclass(frozen=True)
class HeadPairs:
    """Aligned pairs of one head. `student_index` indexes the student's sequence dimension,
    `teacher_index` the teacher tensor's position dimension (sequence or cells, see `aligned_pairs`)."""

    offset: tuple[int, int]  # (row, col) for 2d; (0, d) for 1d
    student_cells: tuple[int, ...]
    teacher_cells: tuple[int, ...]
    student_index: torch.Tensor  # LongTensor [P]
    teacher_index: torch.Tensor  # LongTensor [P]
    class_pair: bool = False  # index 0 of both tensors is the (class position, class position) pair

    @property
    def cell_pairs(self) -> list[tuple[int, int]]:
        """The grid-cell pairs (the class pair is not a cell pair)."""
        return list(zip(self.student_cells, self.teacher_cells))

    def __len__(self) -> int:
        return int(self.student_index.numel())


def default_offsets(layout: Layout, k: int) -> list[tuple[int, int]]:
    """The first k offsets of the layout, as (row, col); a 1D offset d is (0, d) in raster order."""
    if k < 1:
        raise MiraiError(f"foresight.k must be >= 1, got {k}")
    if layout == "1d":
        return [(0, d) for d in range(k)]
    if layout == "2d":
        if k > len(OFFSETS_2D):
            raise MiraiError(
                f"foresight.k = {k} but the 2d layout defines {len(OFFSETS_2D)} offsets; "
                "give foresight.offsets explicitly for more heads"
            )
        return list(OFFSETS_2D[:k])
    raise MiraiError(f"foresight.layout must be '2d' or '1d', got {layout!r}")


def normalise_offsets(layout: Layout, offsets: Sequence[int | Sequence[int]]) -> list[tuple[int, int]]:
    """Explicit offsets from a preset: [[row, col], ...] for 2d, [d, ...] or [[d], ...] for 1d."""
    out: list[tuple[int, int]] = []
    for item in offsets:
        values = [int(item)] if isinstance(item, int) else [int(v) for v in item]
        if layout == "2d" and len(values) == 2:
            out.append((values[0], values[1]))
        elif layout == "1d" and len(values) == 1:
            out.append((0, values[0]))
        else:
            want = "[row, col] pairs" if layout == "2d" else "[d] items"
            raise MiraiError(f"foresight.offsets: layout {layout} takes {want}, got {list(values)}")
    if not out:
        raise MiraiError("foresight.offsets is empty; give at least one offset or leave it unset")
    return out


def aligned_pairs(
    grid: tuple[int, int],
    layout: Layout = "2d",
    k: int = 3,
    offsets: Sequence[int | Sequence[int]] | None = None,
    border: Border = "drop",
    teacher_space: TeacherSpace = "sequence",
    student_cells: Iterable[int] | None = None,
    teacher_cells: Iterable[int] | None = None,
    align_class: bool = True,
) -> list[HeadPairs]:
    """Aligned (student index, teacher index) pairs for every head.

    grid: token grid (h, w). layout/k pick the default offsets; `offsets` overrides both (k is then
    len(offsets)). border: "drop" discards a 2D pair whose target leaves the grid; "wrap" (the public
    code) reads the target at raster index g + row*w + col, so a column past the row's end continues on
    the next row. 1D offsets are raster offsets, so the border rule does not apply to them.
    teacher_space: "sequence" for a causal GPT teacher (cell c at index c + 1, cells 0..N-2 exist),
    "cells" for an encoder (cell c at index c, cells 0..N-1 exist).
    student_cells / teacher_cells: override which cells have a feature (default as above).
    align_class: with a "sequence" teacher, put the pair (position 0, position 0) first in every head (the
    paper's Mirai-E code); an encoder ("cells") has no class position, so it adds nothing there.
    """
    h, w = int(grid[0]), int(grid[1])
    if h < 1 or w < 1:
        raise MiraiError(f"token grid must be at least 1x1, got {h}x{w}")
    n = h * w
    if offsets is not None:
        head_offsets = normalise_offsets(layout, offsets)
    else:
        head_offsets = default_offsets(layout, k)
    if border not in ("drop", "wrap"):
        raise MiraiError(f"foresight.border must be 'drop' or 'wrap', got {border!r}")
    if teacher_space == "sequence":
        index_base, default_teacher = 1, range(n - 1)
    elif teacher_space == "cells":
        index_base, default_teacher = 0, range(n)
    else:
        raise ValueError(f"teacher_space must be 'sequence' or 'cells', got {teacher_space!r}")
    students = sorted(set(range(n - 1) if student_cells is None else student_cells))
    teachers = set(default_teacher if teacher_cells is None else teacher_cells)

    class_pair = bool(align_class) and teacher_space == "sequence"
    first = [0] if class_pair else []
    heads: list[HeadPairs] = []
    for dr, dc in head_offsets:
        s_cells: list[int] = []
        t_cells: list[int] = []
        for g in students:
            r, c = divmod(g, w)
            if layout == "1d" or border == "wrap":
                t = g + dr * w + dc  # raster order: may run on into the next row
            else:
                tr, tc = r + dr, c + dc
                if not (0 <= tr < h and 0 <= tc < w):
                    continue
                t = tr * w + tc
            if 0 <= t < n and t in teachers:
                s_cells.append(g)
                t_cells.append(t)
        heads.append(
            HeadPairs(
                offset=(dr, dc),
                student_cells=tuple(s_cells),
                teacher_cells=tuple(t_cells),
                student_index=torch.tensor(first + [g + 1 for g in s_cells], dtype=torch.long),
                teacher_index=torch.tensor(first + [t + index_base for t in t_cells], dtype=torch.long),
                class_pair=class_pair,
            )
        )
    return heads
