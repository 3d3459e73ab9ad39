"""Errors ozkernels raises; the CLI turns each into one clear line."""


class OzkernelsError(Exception):
    """Base of every error meant for the user."""


class LmodError(OzkernelsError):
    """Lmod could not be found or run."""


class SpecError(OzkernelsError):
    """A kernel spec could not be read, written or removed."""


class LockError(OzkernelsError):
    """Another sync holds the kernels directory."""


class NotFoundError(OzkernelsError):
    """A named environment or kernel does not exist."""


class SourceError(OzkernelsError):
    """A configured discovery source is unknown or cannot be loaded."""


class UsageError(OzkernelsError):
    """The command line asks for something the command does not take."""


class ModulesError(OzkernelsError):
    """Environment Modules could not be found or run."""
