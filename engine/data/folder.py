"""The data folder: where datasets live, what each one holds, and the check that they are there.

The layout is one sub-folder per dataset, each holding the files exactly as their canonical
source distributes them (the same as the shared data folder):

    <data>/mnist/     train-images-idx3-ubyte.gz ... (4 IDX files, gzip)
    <data>/sms_spam/  SMSSpamCollection, readme
    <data>/spambase/  spambase.data, spambase.names, spambase.DOCUMENTATION
    <data>/tinyshakespeare/  input.txt
    <data>/weather/   seattle-weather.csv, seattle-temps.csv
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from descent.engine.errors import DataMissing, DescentError

DATA_ENV = "DESCENT_DATA"


@dataclass(frozen=True)
class DatasetInfo:
    """One downloadable dataset: its files with their SHA-256, and where to get them.

    `urls` are mirrors tried in order. Without `archive`, each is a folder URL that the file
    name is appended to; with `archive`, each is a zip that holds all `files` (matched by base
    name). `needed` are the files the loader reads; `require` checks only those.
    """

    title: str
    files: dict[str, str]           # file name -> SHA-256 (hex)
    needed: tuple[str, ...]
    urls: tuple[str, ...]
    archive: bool = False
    license: str = ""


DATASETS: dict[str, DatasetInfo] = {
    "mnist": DatasetInfo(
        title="MNIST handwritten digits (LeCun, Cortes, Burges)",
        files={
            "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
            "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
            "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
            "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
        },
        needed=("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
        urls=("http://yann.lecun.com/exdb/mnist/",
              "https://ossci-datasets.s3.amazonaws.com/mnist/"),
        license="CC BY-SA 3.0 (Yann LeCun and Corinna Cortes)",
    ),
    "sms_spam": DatasetInfo(
        title="SMS Spam Collection v.1 (Almeida, Gomez Hidalgo; UCI 228)",
        files={
            "SMSSpamCollection": "7d039a24a6083ed9ef0f806ebad56bbb976e3aeb8de05669173bfdc4996c239d",
            "readme": "656da9ff765ddeb69841ef429e3ad65f2207a9f410892a6f04f06542426fb75c",
        },
        needed=("SMSSpamCollection",),
        urls=("https://archive.ics.uci.edu/static/public/228/sms+spam+collection.zip",),
        archive=True,
        license="CC BY 4.0",
    ),
    "spambase": DatasetInfo(
        title="Spambase (Hopkins, Reeber, Forman, Suermondt; UCI 94)",
        files={
            "spambase.data": "b1ef93de71f97714d3d7d4f58fc9f718da7bbc8ac8a150eff2778616a8097b12",
            "spambase.names": "df418fab7923f929237b81efa0987ddfaf2d68cf61291243625aadc684d5ab6a",
            "spambase.DOCUMENTATION": "462e4ffba1241a5962d528364708d188dc75931d56a25a8e9b6c8bb25e094cfd",
        },
        needed=("spambase.data",),
        urls=("https://archive.ics.uci.edu/static/public/94/spambase.zip",),
        archive=True,
        license="CC BY 4.0",
    ),
    "tinyshakespeare": DatasetInfo(
        title="Tiny Shakespeare (Karpathy's char-rnn)",
        files={"input.txt": "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"},
        needed=("input.txt",),
        urls=("https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/",),
        license="public domain (the plays); MIT (the char-rnn repository)",
    ),
    # the files as vega_datasets 0.9.0 ships them inside its wheel (a zip): the canonical copy
    "weather": DatasetInfo(
        title="Seattle weather 2012-2015 (NOAA via vega_datasets 0.9.0)",
        files={
            "seattle-weather.csv": "62f0609f787158128aa2bd102967173a4953122dd4f872bf1d502cae1037df0b",
            "seattle-temps.csv": "c220666521ff4bec4ffb6f0d9acfdc5c1056564b1aad6f78d3b06aa0a0c8b085",
        },
        needed=("seattle-weather.csv",),
        urls=("https://files.pythonhosted.org/packages/py3/v/vega_datasets/vega_datasets-0.9.0-py3-none-any.whl",),
        archive=True,
        license="public domain (NOAA); MIT (vega_datasets)",
    ),
}


def data_dir(override: str | os.PathLike | None = None) -> Path:
    """The data folder: `override` (the --data option), else $DESCENT_DATA, else
    $XDG_DATA_HOME/descent/data, else ~/.local/share/descent/data. Absolute; need not exist."""
    if override is not None and str(override) != "":
        chosen = Path(override)
    elif os.environ.get(DATA_ENV):
        chosen = Path(os.environ[DATA_ENV])
    else:
        xdg = os.environ.get("XDG_DATA_HOME", "")
        base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".local" / "share"
        chosen = base / "descent" / "data"
    return Path(os.path.abspath(chosen.expanduser()))


def dataset_info(name: str) -> DatasetInfo:
    """The `DATASETS` entry for `name`, or a one-line error listing the known names."""
    try:
        return DATASETS[name]
    except KeyError:
        raise DescentError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}") from None


def require(name: str, root: str | os.PathLike) -> Path:
    """`root/name` if the files its loader reads are there, else `DataMissing` saying where we
    looked and how to get them."""
    info = dataset_info(name)
    folder = Path(root) / name
    missing = [f for f in info.needed if not (folder / f).is_file()]
    if missing:
        raise DataMissing(
            f"dataset {name!r} not found: looked for {', '.join(missing)} in {folder}; "
            f"run `descent data fetch {name}` (or point --data / ${DATA_ENV} at a folder that has it)")
    return folder
