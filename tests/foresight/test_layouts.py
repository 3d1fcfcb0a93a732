"""Golden aligned pairs on a 4x4 grid, written out by hand.

Cells:   0  1  2  3
         4  5  6  7
         8  9 10 11
        12 13 14 15
Student cells are 0..14 (cell 15 is never an input). An EMA teacher has cells 0..14, an encoder 0..15.
"""

import pytest
import torch

from mirai_cli.errors import MiraiError
from mirai_cli.foresight.layouts import aligned_pairs

SAME_0_14 = [(0, 0), (1, 1), (2, 2), (3, 3), (4, 4), (5, 5), (6, 6), (7, 7),
             (8, 8), (9, 9), (10, 10), (11, 11), (12, 12), (13, 13), (14, 14)]


def _cells(heads):
    return [h.cell_pairs for h in heads]


def test_2d_k3_ema_teacher_golden():
    heads = aligned_pairs((4, 4), "2d", 3, teacher_space="sequence")
    assert [h.offset for h in heads] == [(0, 0), (0, 1), (1, 0)]
    assert _cells(heads) == [
        SAME_0_14,
        # right neighbour: no pair from column 3; (14, 15) dropped because cell 15 is never a teacher input
        [(0, 1), (1, 2), (2, 3), (4, 5), (5, 6), (6, 7), (8, 9), (9, 10), (10, 11), (12, 13), (13, 14)],
        # the cell below: rows 0..2 only; (11, 15) dropped for the same reason
        [(0, 4), (1, 5), (2, 6), (3, 7), (4, 8), (5, 9), (6, 10), (7, 11), (8, 12), (9, 13), (10, 14)],
    ]
    # sequence indices: student cell g is position g+1, the EMA teacher's cell c is position c+1; by default
    # (align_class, the paper's code) every head starts with the class pair (position 0, position 0)
    right = heads[1]
    assert right.student_index.tolist() == [0, 1, 2, 3, 5, 6, 7, 9, 10, 11, 13, 14]
    assert right.teacher_index.tolist() == [0, 2, 3, 4, 6, 7, 8, 10, 11, 12, 14, 15]
    assert heads[2].student_index.tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]
    assert heads[2].teacher_index.tolist() == [0, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]
    assert heads[0].student_index.tolist() == heads[0].teacher_index.tolist() == list(range(0, 16))
    assert all(h.class_pair for h in heads) and [len(h) for h in heads] == [16, 12, 12]


def test_align_class_off_and_encoder_teacher():
    heads = aligned_pairs((4, 4), "2d", 3, teacher_space="sequence", align_class=False)
    assert heads[1].student_index.tolist() == [1, 2, 3, 5, 6, 7, 9, 10, 11, 13, 14]
    assert heads[1].teacher_index.tolist() == [2, 3, 4, 6, 7, 8, 10, 11, 12, 14, 15]
    assert heads[0].student_index.tolist() == heads[0].teacher_index.tolist() == list(range(1, 16))
    assert not any(h.class_pair for h in heads) and [len(h) for h in heads] == [15, 11, 11]
    # an encoder has no class position: align_class adds nothing there
    on = aligned_pairs((4, 4), "2d", 3, teacher_space="cells", align_class=True)
    off = aligned_pairs((4, 4), "2d", 3, teacher_space="cells", align_class=False)
    assert [h.student_index.tolist() for h in on] == [h.student_index.tolist() for h in off]
    assert [h.teacher_index.tolist() for h in on] == [h.teacher_index.tolist() for h in off]
    assert not any(h.class_pair for h in on)


def test_2d_k3_encoder_teacher_golden():
    heads = aligned_pairs((4, 4), "2d", 3, teacher_space="cells")
    assert _cells(heads) == [
        SAME_0_14,
        [(0, 1), (1, 2), (2, 3), (4, 5), (5, 6), (6, 7), (8, 9), (9, 10), (10, 11), (12, 13), (13, 14), (14, 15)],
        [(0, 4), (1, 5), (2, 6), (3, 7), (4, 8), (5, 9), (6, 10), (7, 11), (8, 12), (9, 13), (10, 14), (11, 15)],
    ]
    # encoder features are indexed by cell
    assert heads[2].teacher_index.tolist() == [4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]
    assert heads[2].student_index.tolist() == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]


def test_1d_k3_golden():
    heads = aligned_pairs((4, 4), "1d", 3, teacher_space="sequence")
    assert [h.offset for h in heads] == [(0, 0), (0, 1), (0, 2)]
    assert _cells(heads) == [
        SAME_0_14,
        # raster order runs on across rows: (3, 4), (7, 8), (11, 12) are kept
        [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (5, 6), (6, 7), (7, 8), (8, 9), (9, 10), (10, 11),
         (11, 12), (12, 13), (13, 14)],
        [(0, 2), (1, 3), (2, 4), (3, 5), (4, 6), (5, 7), (6, 8), (7, 9), (8, 10), (9, 11), (10, 12),
         (11, 13), (12, 14)],
    ]
    enc = aligned_pairs((4, 4), "1d", 3, teacher_space="cells")
    assert enc[2].cell_pairs[-1] == (13, 15) and len(enc[2]) == 14


def test_2d_wrap_matches_public_code():
    heads = aligned_pairs((4, 4), "2d", 3, border="wrap", teacher_space="sequence")
    # +1 from the end of a row continues at the start of the next row
    assert heads[1].cell_pairs == [(g, g + 1) for g in range(14)]
    # +1 row past the last row still leaves the grid and is dropped
    assert heads[2].cell_pairs == [(g, g + 4) for g in range(11)]


def test_explicit_offsets_and_k9():
    heads = aligned_pairs((4, 4), "2d", offsets=[[2, 2], [1, -1]], teacher_space="cells")
    assert [h.offset for h in heads] == [(2, 2), (1, -1)]
    assert heads[0].cell_pairs == [(0, 10), (1, 11), (4, 14), (5, 15)]
    assert heads[1].cell_pairs == [(1, 4), (2, 5), (3, 6), (5, 8), (6, 9), (7, 10), (9, 12), (10, 13), (11, 14)]
    nine = aligned_pairs((3, 5), "2d", 9, teacher_space="cells")
    assert [h.offset for h in nine][-3:] == [(2, 2), (2, 1), (2, 0)]
    assert nine[6].cell_pairs == [(0, 12), (1, 13), (2, 14)]  # non-square grid, (+2, +2)
    one_d = aligned_pairs((2, 3), "1d", offsets=[4], teacher_space="cells")
    assert one_d[0].cell_pairs == [(0, 4), (1, 5)]


def test_bad_layouts_raise():
    with pytest.raises(MiraiError):
        aligned_pairs((4, 4), "2d", 10)
    with pytest.raises(MiraiError):
        aligned_pairs((4, 4), "2d", offsets=[[1]])
    with pytest.raises(MiraiError):
        aligned_pairs((4, 4), "3d", 1)  # type: ignore[arg-type]
    assert aligned_pairs((4, 4), "2d", 1)[0].student_index.dtype == torch.long
