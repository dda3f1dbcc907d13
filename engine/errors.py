"""The engine's one error family.

Every error the engine raises on purpose is an `EngineError`, so a front end can catch
that once (the TUI shows it as a notification, the CLI prints it and exits 2, the server
maps it to a JSON body). Each class also keeps the built-in base it had before the family
existed (`ValueError`, `LookupError`, `OSError`...), so `except ValueError:` clauses
written against the older classes still catch them.

The classes live here, not beside the code that raises them, so that the whole family can
be read in one place; the modules that raise them re-export their names.
"""

from __future__ import annotations


class EngineError(Exception):
    """The root of every error the engine raises on purpose; str() is one line for a person."""


# --- configuration -----------------------------------------------------------------


class ConfigError(EngineError):
    """The config file cannot be used; the message has one line per problem."""


class PredictionConfigError(EngineError, ValueError):
    """A prediction config with an unknown key or a bad value."""


class LoadConfigError(EngineError, ValueError):
    """A load config with an unknown key or a value llama.cpp cannot honour."""


class ModelSettingsError(EngineError, ValueError):
    """Settings that cannot be remembered (an invalid value); the message is one line."""


# --- models ------------------------------------------------------------------------


class ModelNotFoundError(EngineError, LookupError):
    """No local model matches a key."""


class GGUFFormatError(EngineError, ValueError):
    """The file is not a GGUF file, or its header is damaged."""


class ModelLoadError(EngineError, RuntimeError):
    """A model file that is missing, not GGUF, or refused by llama.cpp."""


class HubError(EngineError):
    """Something the Hub would not or could not do; str() is one line for a person."""


class HubUnavailable(HubError):
    """No network, offline mode, a proxy in the way, or the Hub is down."""


class AccessDenied(HubError):
    """A gated or private repository this token (or no token) may not read."""


class NotFound(HubError):
    """No such repository, revision or file."""


class DownloadCancelled(HubError):
    """The person stopped a download; what was fetched so far is kept for a resume."""


# --- predictions -------------------------------------------------------------------


class PredictionCancelled(EngineError, RuntimeError):
    """A prediction stopped because it was cancelled."""


class PredictionNotFinished(EngineError, RuntimeError):
    """`result()` was asked for while the prediction is still running."""


class ChatFormatError(EngineError, ValueError):
    """A chat (JSON or history) that cannot be read."""


class TemplateError(EngineError, ValueError):
    """A chat template that cannot be read, does not parse, or refuses a conversation."""


class UnsupportedToolFormat(EngineError, ValueError):
    """No grammar is known for this tool-call format."""


class RemoteError(EngineError, RuntimeError):
    """The remote server could not be reached, refused the request or failed mid-stream."""


# --- tools and files ---------------------------------------------------------------


class ToolError(EngineError):
    """A tool could not do what was asked; the message goes back to the model."""


class StoreError(EngineError, OSError):
    """A write was refused to protect a file that could not be set aside."""


class SaveError(StoreError):
    """A file could not be written (a full disk, no permission); its old version is intact.

    Keeps the errno of the OSError it comes from; str() names the file.
    """

    def __init__(self, errno: int | None, message: str, path: str = "") -> None:
        super().__init__(errno, message)
        self.message = message
        self.path = path

    def __str__(self) -> str:
        return self.message

    @classmethod
    def for_file(cls, path: object, err: OSError, existed: bool) -> SaveError:
        """The error for `path`, which the write `err` failed; `existed`: it had a version."""
        reason = err.strerror or str(err) or type(err).__name__
        kept = "its previous version is intact" if existed else "nothing was written"
        return cls(err.errno, f"could not save {path}: {reason}; {kept}", str(path))


# --- serving -----------------------------------------------------------------------


class ServerError(EngineError, RuntimeError):
    """The server could not start (the port is taken, the host does not resolve...)."""


# Names the LM Studio SDK uses for the same failures, so `except lms.LMStudio...` works.
LMStudioError = EngineError
LMStudioModelNotFoundError = ModelNotFoundError
LMStudioPredictionError = EngineError
LMStudioCancelledError = PredictionCancelled
LMStudioClientError = EngineError
LMStudioServerError = EngineError

__all__ = [
    "AccessDenied",
    "ChatFormatError",
    "ConfigError",
    "DownloadCancelled",
    "EngineError",
    "GGUFFormatError",
    "HubError",
    "HubUnavailable",
    "LMStudioCancelledError",
    "LMStudioClientError",
    "LMStudioError",
    "LMStudioModelNotFoundError",
    "LMStudioPredictionError",
    "LMStudioServerError",
    "LoadConfigError",
    "ModelLoadError",
    "ModelNotFoundError",
    "ModelSettingsError",
    "NotFound",
    "PredictionCancelled",
    "PredictionConfigError",
    "PredictionNotFinished",
    "RemoteError",
    "SaveError",
    "ServerError",
    "StoreError",
    "TemplateError",
    "ToolError",
    "UnsupportedToolFormat",
]
