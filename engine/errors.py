"""User-facing errors: each prints as one line and maps to an exit code."""


class DescentError(Exception):
    """An expected failure the user can fix; `str()` is the whole one-line message."""

    exit_code = 2


class SpecError(DescentError):
    """A bad value in a model, scenario or command-line setting.

    `key` is the dotted path of the offending key (``model.layers[1].hidden``); `file` and
    `line` are filled in by whoever knows them (the scenario loader).
    """

    def __init__(self, key: str, message: str, file: str | None = None, line: int | None = None):
        self.key, self.message, self.file, self.line = key, message, file, line
        super().__init__(str(self))

    def __str__(self) -> str:
        where = self.file or ""
        if self.line is not None:
            where += f":{self.line}"
        prefix = f"{where}: " if where else ""
        return f"{prefix}{self.key}: {self.message}" if self.key else f"{prefix}{self.message}"

    def at(self, prefix: str = "", file: str | None = None, line: int | None = None) -> "SpecError":
        """The same error with the key nested under `prefix` and the file named."""
        key = f"{prefix}{self.key}" if prefix else self.key
        return SpecError(key, self.message, file or self.file, line if line is not None else self.line)


class DataMissing(DescentError):
    """A dataset file is not in the data folder; the message says where we looked and how to fetch it."""

