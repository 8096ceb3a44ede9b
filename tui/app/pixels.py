"""Grey images and heat maps in the terminal, and the preprocessing of hand-drawn digits (pure
functions and Rich renderables; no widgets).

`PixelImage` draws two pixel rows per terminal row with the upper half block ▀ (foreground = top
pixel, background = bottom pixel) in the 256-colour grey ramp, so a 28x28 image is 28 columns by 14
rows at the right aspect; `plain=True` (NO_COLOR) draws shade characters instead (`digit_lines`).
`confusion_grid` is a compact confusion matrix: one heat-coloured 3-column cell per count.
`mnist_like` / `optdigits_like` turn a drawing into what the MNIST / 8x8 model was trained on.
"""

from __future__ import annotations

import numpy as np
from rich.color import Color
from rich.style import Style
from rich.text import Text

# xterm's 256-colour greys, darkest first: black, the 24-step ramp, white
GREYS = [16, *range(232, 256), 231]
_GREY_STYLES = [Color.from_ansi(n) for n in GREYS]


def normalized(image) -> np.ndarray:
    """(…, H, W) as a float (H, W) in [0, 1], min to max (standardized data too)."""
    img = np.asarray(image, dtype=np.float64)
    img = img.reshape(img.shape[-2], img.shape[-1])
    lo, hi = float(img.min()), float(img.max())
    return (img - lo) / (hi - lo) if hi > lo else np.zeros_like(img)


def area_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in): each output pixel the mean of the input it covers (exact area resampling,
    which antialiases when shrinking)."""
    edges = np.linspace(0.0, n_in, n_out + 1)
    left, right = np.arange(n_in), np.arange(1, n_in + 1)
    overlap = np.clip(np.minimum(edges[1:, None], right) - np.maximum(edges[:-1, None], left), 0, None)
    return overlap / overlap.sum(axis=1, keepdims=True)


def resize(img: np.ndarray, h: int, w: int) -> np.ndarray:
    img = np.asarray(img, dtype=np.float64)
    if img.shape == (h, w):
        return img
    return area_matrix(img.shape[0], h) @ img @ area_matrix(img.shape[1], w).T


def fit(img: np.ndarray, max_cols: int, max_rows: int) -> np.ndarray:
    """The image scaled by a whole factor (up to 2x, or down) to fit `max_cols` x `2 * max_rows` pixels."""
    h, w = img.shape
    if 2 * w <= max_cols and 2 * h <= 2 * max_rows:
        return np.kron(img, np.ones((2, 2)))
    if w <= max_cols and h <= 2 * max_rows:
        return img
    k = max(w / max(1, max_cols), h / max(1, 2 * max_rows))
    return resize(img, max(1, int(h / k)), max(1, int(w / k)))


def pixel_lines(image, plain: bool = False, cursor: tuple[int, int] | None = None) -> list[Text]:
    """A grey image in [0, 1] as one Text per terminal row (two pixel rows): ▀ in the grey of the
    top pixel on the grey of the bottom one; `plain`: shade characters, no colour. `cursor` =
    (column, row) of a terminal cell to mark."""
    img = np.clip(np.asarray(image, dtype=np.float64), 0.0, 1.0)
    if img.shape[0] % 2:
        img = np.vstack([img, np.zeros((1, img.shape[1]))])
    levels = np.rint(img * (len(GREYS) - 1)).astype(int)
    plain_rows = digit_lines(img, normalize=False) if plain else None
    lines = []
    for r in range(img.shape[0] // 2):
        line = Text(no_wrap=True, overflow="crop")
        for c in range(img.shape[1]):
            if cursor == (c, r):
                line.append("+", Style(color="bright_yellow", bold=True, reverse=plain,
                                       bgcolor=None if plain else _GREY_STYLES[levels[2 * r, c]]))
            elif plain:
                line.append(plain_rows[r][c])
            else:
                line.append("▀", Style(color=_GREY_STYLES[levels[2 * r, c]],
                                       bgcolor=_GREY_STYLES[levels[2 * r + 1, c]]))
        lines.append(line)
    return lines


class PixelImage:
    """`pixel_lines` as one renderable."""

    def __init__(self, image, plain: bool = False, cursor: tuple[int, int] | None = None):
        self.lines = pixel_lines(image, plain, cursor)
        self.width = np.shape(image)[-1]

    def __rich_console__(self, console, options):
        for line in self.lines:
            yield line

    def __rich_measure__(self, console, options):
        from rich.measure import Measurement

        return Measurement(self.width, self.width)


def digit_lines(image: np.ndarray, scale: int = 1, normalize: bool = True) -> list[str]:
    """A grey image (H, W) as lines of block characters, two pixel rows per line: ▀ top only,
    ▄ bottom only, █ both, shades ░▒▓ for grey. Readable without colour."""
    img = normalized(image) if normalize else np.asarray(image, dtype=np.float64)
    if scale > 1:
        img = np.kron(img, np.ones((scale, scale)))
    if img.shape[0] % 2:
        img = np.vstack([img, np.zeros((1, img.shape[1]))])
    lines = []
    for top, bottom in zip(img[0::2], img[1::2]):
        chars = []
        for t, b in zip(top, bottom):
            if t >= 0.5 and b >= 0.5:
                chars.append("█" if min(t, b) >= 0.75 else "▓")
            elif t >= 0.5 and b < 0.25:
                chars.append("▀")
            elif b >= 0.5 and t < 0.25:
                chars.append("▄")
            else:
                mean = (t + b) / 2
                chars.append(" " if mean < 0.12 else "░" if mean < 0.3 else "▒" if mean < 0.5 else "▓")
        lines.append("".join(chars))
    return lines


# ---- the confusion matrix -------------------------------------------------------------------------
RIGHT = [22, 28, 34, 40, 46]            # dark to bright green (256 colours): share of the row right
WRONG = [52, 88, 124, 160, 196]         # dark to bright red: share of the row confused


def _cell(v: int, width: int = 3) -> str:
    if v == 0:
        return " " * (width - 1) + "·"
    if v < 10 ** (width - 1):               # a space before every number: 182 next to 5 is not 1825
        return f"{v:>{width}}"
    return f"{v // 1000:>{width - 1}}k"


def cell_width(matrix) -> int:
    """4 columns a cell when a count has three digits, else 3."""
    return 4 if int(np.max(matrix, initial=0)) >= 100 else 3


def confusion_grid(matrix, names=None, plain: bool = False, title: str = "confusion: true ↓ predicted →",
                   cell: int = 3) -> Text:
    """Compact: `cell` columns a cell (2 + cell * k columns wide, k + 3 rows), the background a shade of green
    (diagonal) or red (a confusion) by the count's share of its row; NO_COLOR keeps the numbers,
    with the diagonal bold."""
    m = np.asarray(matrix, dtype=np.int64)
    k = len(m)
    labels = [str(n)[:2] for n in (names or range(k))][:k]
    out = Text(title + "\n", style="bold", no_wrap=True, overflow="crop")
    out.append("  " + "".join(f"{lbl:>{cell}}" for lbl in labels) + "\n", style="dim")
    for i in range(k):
        total = max(1, int(m[i].sum()))
        out.append(f"{labels[i]:>2}", style="dim")
        for j in range(k):
            v = int(m[i, j])
            if plain:
                out.append(_cell(v, cell), style="bold" if i == j else ("" if v else "dim"))
                continue
            ramp = RIGHT if i == j else WRONG
            share = v / total
            level = min(len(ramp) - 1, int(share * len(ramp) * (1 if i == j else 4)))
            style = Style(color="white" if v else "grey35", bold=i == j,
                          bgcolor=Color.from_ansi(ramp[level]) if v else None)
            out.append(_cell(v, cell), style=style)
        out.append("\n")
    right, total = int(np.trace(m)), int(m.sum())
    if total:
        out.append(f"{right:,} of {total:,} right ({100 * right / total:.1f}%)", style="dim")
    return out


def confusion_width(k: int, cell: int = 3) -> int:
    return 2 + cell * k


def _heat(v: int, total: int, diagonal: bool) -> Color:
    if v == 0:
        return Color.from_ansi(236)
    ramp = RIGHT if diagonal else WRONG
    return Color.from_ansi(ramp[min(len(ramp) - 1, int(v / max(1, total) * len(ramp) * (1 if diagonal else 4)))])


def confusion_heatmap(matrix, names=None) -> Text:
    """Where there is no room for numbers: two classes a row in half blocks, 2 columns a class
    (2k + 3 columns, k/2 + 3 rows); the same shades as `confusion_grid`."""
    m = np.asarray(matrix, dtype=np.int64)
    k = len(m)
    labels = [str(n)[:1] for n in (names or range(k))][:k]
    out = Text("confusion ↓true →guess\n", style="bold", no_wrap=True, overflow="crop")
    out.append("   " + "".join(f"{lbl:<2}" for lbl in labels) + "\n", style="dim")
    for i in range(0, k, 2):
        out.append(f"{labels[i]}{labels[i + 1] if i + 1 < k else ' '} ", style="dim")
        for j in range(k):
            top = _heat(int(m[i, j]), int(m[i].sum()), i == j)
            bottom = _heat(int(m[i + 1, j]), int(m[i + 1].sum()), i + 1 == j) if i + 1 < k else None
            out.append("▀▀", style=Style(color=top, bgcolor=bottom))
        out.append("\n")
    right, total = int(np.trace(m)), int(m.sum())
    if total:
        out.append(f"{100 * right / total:.1f}% right", style="dim")
    return out


# ---- hand-drawn digits into the training distribution ---------------------------------------------
def _crop(ink: np.ndarray):
    rows, cols = np.nonzero(ink > 0.05)
    if not len(rows):
        return None
    return ink[rows.min():rows.max() + 1, cols.min():cols.max() + 1]


def _place(img: np.ndarray, size: int) -> np.ndarray:
    """`img` centred in a size x size field of zeros."""
    out = np.zeros((size, size))
    h, w = img.shape
    top, left = (size - h) // 2, (size - w) // 2
    out[top:top + h, left:left + w] = img
    return out


def mnist_like(ink: np.ndarray) -> np.ndarray | None:
    """MNIST's own preprocessing: the drawing's bounding box scaled (antialiased) to fit a 20x20
    box, placed in 28x28 with its centre of mass at the centre. None for an empty drawing."""
    crop = _crop(ink)
    if crop is None:
        return None
    h, w = crop.shape
    s = 20.0 / max(h, w)
    digit = resize(crop, max(1, round(h * s)), max(1, round(w * s)))
    field = _place(digit, 28)
    ys, xs = np.indices(field.shape)
    mass = field.sum()
    dy, dx = int(round(13.5 - (ys * field).sum() / mass)), int(round(13.5 - (xs * field).sum() / mass))
    shifted = np.zeros_like(field)
    src = field[max(0, -dy):28 - max(0, dy), max(0, -dx):28 - max(0, dx)]
    shifted[max(0, dy):max(0, dy) + src.shape[0], max(0, dx):max(0, dx) + src.shape[1]] = src
    return np.clip(shifted, 0.0, 1.0)


def optdigits_like(ink: np.ndarray) -> np.ndarray | None:
    """scikit-learn's 8x8 digits (UCI optdigits): the digit scaled to fill the height of a 32x32
    box, at most 24 wide (the set's outer columns are almost always empty), then the ink counted
    in 4x4 blocks (0..16), here divided by 16 like the loader. None if empty."""
    crop = _crop(ink)
    if crop is None:
        return None
    h, w = crop.shape
    s = min(32.0 / h, 24.0 / w)
    field = _place(resize(crop, max(1, round(h * s)), max(1, round(w * s))), 32)
    return np.clip(field.reshape(8, 4, 8, 4).mean(axis=(1, 3)), 0.0, 1.0)
