"""The data folder, `require` and `fetch` (against local file:// sources, no network)."""

import hashlib
import zipfile
from pathlib import Path

import pytest

from descent.engine.data import DATA_ENV, DATASETS, DatasetInfo, data_dir, fetch, require
from descent.engine.errors import DataMissing, DescentError


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- data_dir -------------------------------------------------------------------------------

def test_data_dir_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv(DATA_ENV, raising=False)
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    assert data_dir() == tmp_path / "home" / ".local" / "share" / "descent" / "data"

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert data_dir() == tmp_path / "xdg" / "descent" / "data"

    monkeypatch.setenv(DATA_ENV, str(tmp_path / "env"))
    assert data_dir() == tmp_path / "env"

    assert data_dir(tmp_path / "flag") == tmp_path / "flag"


def test_data_dir_is_absolute_and_ignores_empty_values(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(DATA_ENV, "some/../data")
    assert data_dir() == tmp_path / "data"
    monkeypatch.setenv(DATA_ENV, "")
    monkeypatch.setenv("XDG_DATA_HOME", "relative/xdg")        # not absolute: ignored (XDG spec)
    monkeypatch.setenv("HOME", str(tmp_path / "h"))
    assert data_dir("") == tmp_path / "h" / ".local" / "share" / "descent" / "data"


def test_known_datasets_have_checksums_and_sources():
    assert set(DATASETS) == {"mnist", "sms_spam", "spambase", "tinyshakespeare", "weather"}
    for info in DATASETS.values():
        assert info.urls and set(info.needed) <= set(info.files)
        assert all(len(h) == 64 and int(h, 16) >= 0 for h in info.files.values())
    assert DATASETS["mnist"].urls[0].startswith("http://yann.lecun.com/")
    assert DATASETS["mnist"].files["train-images-idx3-ubyte.gz"].startswith("440fcabf")


# --- require --------------------------------------------------------------------------------

def test_require_names_folder_files_and_fetch_command(tmp_path):
    with pytest.raises(DataMissing) as e:
        require("mnist", tmp_path)
    message = str(e.value)
    assert "\n" not in message
    assert f"in {tmp_path / 'mnist'}" in message
    for f in DATASETS["mnist"].needed:
        assert f in message
    assert "descent data fetch mnist" in message and "$DESCENT_DATA" in message


def test_require_lists_only_missing_files_and_returns_folder(tmp_path):
    folder = tmp_path / "spambase"
    folder.mkdir()
    with pytest.raises(DataMissing, match="spambase.data"):
        require("spambase", tmp_path)
    (folder / "spambase.data").write_text("1,0\n")
    assert require("spambase", tmp_path) == folder


def test_require_unknown_dataset(tmp_path):
    with pytest.raises(DescentError, match="unknown dataset 'cifar'.*mnist"):
        require("cifar", tmp_path)


# --- fetch ----------------------------------------------------------------------------------

@pytest.fixture
def mirror(tmp_path):
    """A folder of two files served as file:// URLs."""
    folder = tmp_path / "mirror"
    folder.mkdir()
    files = {"a.gz": b"first file" * 1000, "b.gz": b"second"}
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return folder, files


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_fetch_falls_back_to_next_mirror_and_verifies(monkeypatch, tmp_path, mirror):
    src, files = mirror
    missing = (tmp_path / "nowhere").as_uri() + "/"
    info = DatasetInfo("test", {n: sha(d) for n, d in files.items()}, ("a.gz",),
                       urls=(missing, src.as_uri() + "/"))
    monkeypatch.setitem(DATASETS, "mnist", info)
    calls = []
    root = tmp_path / "data"
    folder = fetch("mnist", root, progress=lambda label, done, total: calls.append((label, done, total)))
    assert folder == root / "mnist"
    for name, data in files.items():
        assert (folder / name).read_bytes() == data
    assert leftovers(folder) == []
    assert ("a.gz", len(files["a.gz"]), len(files["a.gz"])) in calls
    assert require("mnist", root) == folder

    calls.clear()                            # everything present and verified: nothing downloaded
    fetch("mnist", root, progress=lambda *a: calls.append(a))
    assert calls == []


def test_fetch_checksum_mismatch_raises_and_leaves_no_file(monkeypatch, tmp_path, mirror):
    src, files = mirror
    info = DatasetInfo("test", {"a.gz": "0" * 64}, ("a.gz",), urls=(src.as_uri() + "/",))
    monkeypatch.setitem(DATASETS, "mnist", info)
    with pytest.raises(DescentError) as e:
        fetch("mnist", tmp_path)
    assert "checksum mismatch" in str(e.value) and "mnist/a.gz" in str(e.value)
    assert "\n" not in str(e.value)
    assert list((tmp_path / "mnist").iterdir()) == []


def test_fetch_replaces_a_corrupt_file(monkeypatch, tmp_path, mirror):
    src, files = mirror
    info = DatasetInfo("test", {"b.gz": sha(files["b.gz"])}, ("b.gz",), urls=(src.as_uri() + "/",))
    monkeypatch.setitem(DATASETS, "mnist", info)
    (tmp_path / "mnist").mkdir()
    (tmp_path / "mnist" / "b.gz").write_bytes(b"truncated")
    fetch("mnist", tmp_path)
    assert (tmp_path / "mnist" / "b.gz").read_bytes() == files["b.gz"]


def test_fetch_network_failure_is_one_line(monkeypatch, tmp_path):
    info = DatasetInfo("test", {"a.gz": "0" * 64}, ("a.gz",),
                       urls=("http://127.0.0.1:9/", (tmp_path / "gone").as_uri() + "/"))
    monkeypatch.setitem(DATASETS, "mnist", info)
    with pytest.raises(DescentError) as e:
        fetch("mnist", tmp_path / "data")
    message = str(e.value)
    assert message.startswith("could not fetch mnist/a.gz: http://127.0.0.1:9/a.gz: ")
    assert "\n" not in message and "gone/a.gz" in message
    assert list((tmp_path / "data" / "mnist").iterdir()) == []


def make_zip(path: Path, members: dict[str, bytes]) -> str:
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path.as_uri()


def test_fetch_from_archive_extracts_verified_members(monkeypatch, tmp_path):
    members = {"SMSSpamCollection": b"ham\thello\n", "readme": b"about"}
    url = make_zip(tmp_path / "sms.zip", {"inner/" + k: v for k, v in members.items()} | {"other.txt": b"x"})
    info = DatasetInfo("test", {k: sha(v) for k, v in members.items()}, ("SMSSpamCollection",),
                       urls=(url,), archive=True)
    monkeypatch.setitem(DATASETS, "sms_spam", info)
    folder = fetch("sms_spam", tmp_path / "data")
    assert sorted(p.name for p in folder.iterdir()) == ["SMSSpamCollection", "readme"]
    assert (folder / "readme").read_bytes() == b"about"


def test_fetch_from_archive_with_a_bad_member_installs_nothing(monkeypatch, tmp_path):
    url = make_zip(tmp_path / "sms.zip", {"SMSSpamCollection": b"tampered", "readme": b"about"})
    info = DatasetInfo("test", {"SMSSpamCollection": sha(b"original"), "readme": sha(b"about")},
                       ("SMSSpamCollection",), urls=(url,), archive=True)
    monkeypatch.setitem(DATASETS, "sms_spam", info)
    with pytest.raises(DescentError, match="SMSSpamCollection: checksum mismatch"):
        fetch("sms_spam", tmp_path / "data")
    assert list((tmp_path / "data" / "sms_spam").iterdir()) == []


def test_fetch_from_something_that_is_not_a_zip(monkeypatch, tmp_path):
    (tmp_path / "page.zip").write_text("<html>moved</html>")
    info = DatasetInfo("test", {"readme": sha(b"about")}, ("readme",),
                       urls=((tmp_path / "page.zip").as_uri(),), archive=True)
    monkeypatch.setitem(DATASETS, "sms_spam", info)
    with pytest.raises(DescentError, match="not a readable zip"):
        fetch("sms_spam", tmp_path / "data")
    assert list((tmp_path / "data" / "sms_spam").iterdir()) == []


def test_fetch_weather_from_a_wheel_like_the_vega_datasets_one(monkeypatch, tmp_path):
    """The canonical source is the vega_datasets 0.9.0 wheel: a zip with the CSVs under
    vega_datasets/_data/; the real checksums must match the shared copies byte for byte."""
    shared = data_dir() / "weather"
    if not all((shared / f).is_file() for f in DATASETS["weather"].files):
        pytest.skip(f"the weather files are not in {shared}")
    members = {f"vega_datasets/_data/{f}": (shared / f).read_bytes() for f in DATASETS["weather"].files}
    url = make_zip(tmp_path / "vega_datasets-0.9.0-py3-none-any.whl",
                   members | {"vega_datasets/_data/cars.json": b"[]", "vega_datasets/__init__.py": b""})
    real = DATASETS["weather"]
    assert real.archive and real.urls[0].endswith("vega_datasets-0.9.0-py3-none-any.whl")
    monkeypatch.setitem(DATASETS, "weather", DatasetInfo(real.title, real.files, real.needed, (url,), True))
    folder = fetch("weather", tmp_path / "data")
    assert sorted(p.name for p in folder.iterdir()) == ["seattle-temps.csv", "seattle-weather.csv"]
    assert require("weather", tmp_path / "data") == folder


def test_data_prefix_paths_resolve_in_the_data_folder(tmp_path):
    from descent.engine.data.sources import resolve_path
    (tmp_path / "weather").mkdir()
    (tmp_path / "weather" / "w.csv").write_text("date,t\n")
    assert resolve_path("data:weather/w.csv", Path("/elsewhere"), tmp_path) == tmp_path / "weather" / "w.csv"
    assert resolve_path("w.csv", tmp_path / "weather") == tmp_path / "weather" / "w.csv"
    with pytest.raises(DataMissing, match="run `descent data fetch weather`"):
        resolve_path("data:weather/seattle-weather.csv", Path("."), tmp_path)
    with pytest.raises(DescentError, match="inside the data folder"):
        resolve_path("data:../etc/passwd", Path("."), tmp_path)
