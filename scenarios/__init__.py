"""The bundled scenario files (a package so they ship inside the wheel)."""
