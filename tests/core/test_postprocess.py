"""core/postprocess.py: the run-length labelling against scipy.ndimage.label (exact, on many kinds of masks), the
two operations against references built on it, the canonical order of apply(), and parse_steps' one-line errors."""
import numpy as np
import pytest

from core import postprocess as pp
from core.errors import InputError, UserError

ndimage = pytest.importorskip("scipy.ndimage")  # the tests' reference only: core/ never imports scipy

EIGHT = np.ones((3, 3), bool)
FOUR = ndimage.generate_binary_structure(2, 1)


def blobs(rng, shape, cells, density):
    """Blocky blobs: a coarse random grid upsampled, cut to `shape`, with some pixels flipped."""
    coarse = rng.random((shape[0] // cells + 1, shape[1] // cells + 1)) < density
    m = np.kron(coarse, np.ones((cells, cells), bool))[: shape[0], : shape[1]]
    return m ^ (rng.random(shape) < 0.02)


def discs(rng, shape, n):
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]]
    m = np.zeros(shape, bool)
    for _ in range(n):
        cy, cx = rng.integers(0, shape[0]), rng.integers(0, shape[1])
        r = rng.integers(1, max(2, min(shape) // 3))
        ring = rng.random() < 0.5
        d = (yy - cy) ** 2 + (xx - cx) ** 2
        m |= (d < r * r) & ((d >= (r // 2) ** 2) if ring else True)  # rings leave holes to fill
    return m


def masks():
    """(name, mask) of every kind the brief lists: random blobs, noise, checkerboards, single pixels, empty,
    full, masks touching the borders, diagonal-only connections, thin and tiny shapes."""
    rng = np.random.default_rng(0)
    out = []
    for i, shape in enumerate([(1, 1), (1, 9), (9, 1), (2, 2), (7, 5), (31, 47), (64, 64), (97, 130)]):
        out += [(f"empty{shape}", np.zeros(shape, bool)), (f"full{shape}", np.ones(shape, bool))]
        for d in (0.1, 0.3, 0.5, 0.7, 0.9):
            out.append((f"noise{shape}_{d}", rng.random(shape) < d))
        out.append((f"blobs{shape}", blobs(rng, shape, 1 + i, 0.4)))
        out.append((f"discs{shape}", discs(rng, shape, 1 + i % 4)))
        yy, xx = np.indices(shape)
        out.append((f"checker{shape}", (yy + xx) % 2 == 0))
        out.append((f"checker2{shape}", (yy // 2 + xx // 2) % 2 == 1))
        out.append((f"diagonal{shape}", (yy == xx) | (yy + xx == shape[1] - 1)))  # X of diagonal-only steps
        single = np.zeros(shape, bool)
        single[rng.integers(0, shape[0]), rng.integers(0, shape[1])] = True
        out.append((f"single{shape}", single))
        frame = np.ones(shape, bool)
        frame[1:-1, 1:-1] = False  # a border frame: a hole that is the whole inside
        out.append((f"frame{shape}", frame))
        out.append((f"frame_inverted{shape}", ~frame))
    for seed in range(40):  # many random masks of random size and kind
        r = np.random.default_rng(100 + seed)
        shape = (int(r.integers(1, 80)), int(r.integers(1, 80)))
        kind = seed % 3
        m = (r.random(shape) < r.random()) if kind == 0 else blobs(r, shape, int(r.integers(1, 6)), r.random()) \
            if kind == 1 else discs(r, shape, int(r.integers(1, 6)))
        out.append((f"random{seed}{shape}", m))
    steps = np.zeros((20, 20), bool)  # a staircase joined only at corners, beside 4-connected bars
    for k in range(10):
        steps[k, k] = steps[k + 1, k] = True
    steps[15:, 3:18:2] = True
    out.append(("staircase", steps))
    return out


MASKS = masks()
IDS = [n for n, _ in MASKS]


def reference_largest(m):
    lab, n = ndimage.label(m, EIGHT)  # labels numbered in raster order of each component's first pixel
    if n == 0:
        return m.copy()
    sizes = np.bincount(lab.ravel())[1:]
    return lab == 1 + int(np.argmax(sizes))  # argmax: the first of equal sizes


def reference_fill(m):
    lab, n = ndimage.label(~m, FOUR)
    border = set(np.unique(np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]]))) - {0}
    holes = (lab > 0) & ~np.isin(lab, list(border))
    return m | holes


@pytest.mark.parametrize("name,m", MASKS, ids=IDS)
def test_labels_equal_scipy_exactly(name, m):
    for diagonal, structure in ((True, EIGHT), (False, FOUR)):
        got, n = pp.label(m, diagonal=diagonal)
        want, n_want = ndimage.label(m, structure)
        assert n == n_want, (name, diagonal)
        np.testing.assert_array_equal(got, want, err_msg=f"{name} diagonal={diagonal}")


@pytest.mark.parametrize("name,m", MASKS, ids=IDS)
def test_operations_equal_their_scipy_references(name, m):
    before = m.copy()
    got = pp.largest_component(m)
    assert got.dtype == bool and got.shape == m.shape
    np.testing.assert_array_equal(got, reference_largest(m), err_msg=name)
    np.testing.assert_array_equal(pp.fill_holes(m), reference_fill(m), err_msg=name)
    np.testing.assert_array_equal(pp.fill_holes(m), ndimage.binary_fill_holes(m), err_msg=name)
    np.testing.assert_array_equal(m, before)  # the input is left as it was


def test_many_runs_take_the_cumulative_path_and_agree():
    """More kept runs than LOOP_RUNS (half-density noise: one 8-connected component of ~14,000 runs, ~13,000
    one-pixel holes): _paint's other branch, the same answers."""
    m = np.random.default_rng(8).random((200, 300)) < 0.5
    largest, filled = pp.largest_component(m), pp.fill_holes(m)
    assert len(pp._runs(largest)[0]) > pp.LOOP_RUNS and len(pp._runs(filled & ~m)[0]) > pp.LOOP_RUNS
    np.testing.assert_array_equal(largest, reference_largest(m))
    np.testing.assert_array_equal(filled, reference_fill(m))


def test_ties_keep_the_component_that_comes_first_in_row_major_order():
    m = np.zeros((4, 8), bool)
    m[1, 0:3] = True   # 3 pixels, first pixel at (1, 0)
    m[0, 6] = m[1, 6] = m[2, 6] = True  # 3 pixels, first pixel at (0, 6): earlier in row-major order
    got = pp.largest_component(m)
    assert got[:, 6].sum() == 3 and not got[1, :3].any()
    diagonal = np.zeros((3, 3), bool)
    diagonal[0, 0] = diagonal[1, 1] = diagonal[2, 2] = True  # one 8-connected component
    np.testing.assert_array_equal(pp.largest_component(diagonal), diagonal)
    ring = np.ones((3, 3), bool)
    ring[1, 1] = False
    np.testing.assert_array_equal(pp.fill_holes(ring), np.ones((3, 3), bool))
    corner_gap = ring.copy()
    corner_gap[0, 1] = False  # the hole opens to the border through a 4-neighbour: not a hole
    np.testing.assert_array_equal(pp.fill_holes(corner_gap), corner_gap)


def test_apply_runs_the_steps_in_canonical_order():
    """A ring (100 px, enclosing 200 px) and a solid blob (150 px): largest first keeps the blob, fill first the
    filled ring. The canonical order is largest-component, then fill-holes, whatever order given."""
    m = np.zeros((40, 60), bool)
    m[2:22, 2:22] = True
    m[5:19, 5:19] = False          # ring: 400 - 196 = 204 px around a 196 px hole
    m[25:38, 30:52] = True          # blob: 13 x 22 = 286 px
    canonical = pp.fill_holes(pp.largest_component(m))
    other = pp.largest_component(pp.fill_holes(m))
    assert not np.array_equal(canonical, other)  # the order matters on this mask
    for steps in (("largest-component", "fill-holes"), ("fill-holes", "largest-component"),
                  "fill-holes,largest-component", ["fill-holes", "largest-component", "fill-holes"]):
        np.testing.assert_array_equal(pp.apply(m, steps), canonical, err_msg=str(steps))
    np.testing.assert_array_equal(pp.apply(m, ()), m)
    np.testing.assert_array_equal(pp.apply(m, "none"), m)
    np.testing.assert_array_equal(pp.apply(m.astype(np.uint8), ("fill-holes",)), pp.fill_holes(m))


@pytest.mark.parametrize("text,want", [
    ("none", ()), ("largest-component", ("largest-component",)), ("fill-holes", ("fill-holes",)),
    ("largest-component,fill-holes", pp.POSTPROCESS_STEPS), ("fill-holes, largest-component", pp.POSTPROCESS_STEPS),
])
def test_parse_steps(text, want):
    assert pp.parse_steps(text) == want


@pytest.mark.parametrize("text", ["largest", "", "none,fill-holes", "fill-holes,", "NONE", "fill_holes"])
def test_parse_steps_refuses_other_values_in_one_line(text):
    with pytest.raises(UserError) as e:
        pp.parse_steps(text)
    assert str(e.value) == (f"--postprocess {text!r}: unknown post-processing; choose none, largest-component, "
                            f"fill-holes or largest-component,fill-holes")


def test_check_steps_and_shapes_refused():
    with pytest.raises(UserError, match=r"^postprocess 'holes': unknown post-processing step; choose none, "):
        pp.check_steps(["holes"])
    with pytest.raises(UserError, match=r"^postprocess 3: not a list of steps; choose none, "):
        pp.check_steps(3)
    with pytest.raises(InputError, match=r"post-processing takes one HxW mask, got an array of shape \(2, 3, 4\)"):
        pp.largest_component(np.zeros((2, 3, 4), bool))
