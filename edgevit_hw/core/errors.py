"""User-facing errors: each carries one line that names the field and what it must be."""


class EdgeVitError(Exception):
    """Base class; the CLI prints ``str(err)`` on one line and exits with status 2."""


class SpecError(EdgeVitError):
    """The YAML spec is malformed or impossible."""


class WeightsError(EdgeVitError):
    """A weights file does not match the spec."""
