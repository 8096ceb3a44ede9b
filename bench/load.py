"""How long the MNIST loader takes (60,000 + 10,000 images from the gzip files): the dashboard
waits this long before its first step. It should stay under 2 s.

    DESCENT_DATA=DIR python bench/load.py [--repeat N]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from descent.engine.data import data_dir  # noqa: E402
from descent.engine.data.images import load_mnist  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    root = data_dir(None)
    times = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        load_mnist(root)
        times.append(time.perf_counter() - start)
    print(f"load_mnist: best {min(times):.2f} s, worst {max(times):.2f} s over {args.repeat} loads from {root}")


if __name__ == "__main__":
    main()
