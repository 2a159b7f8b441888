"""One small error hierarchy. Every message says what happened and what to do."""


class SdrAssetsError(Exception):
    """Base of every error this project raises on purpose."""


class ConfigError(SdrAssetsError):
    """A setting, flag or URI is invalid. The message names it and the accepted values."""


class SourceError(SdrAssetsError):
    """A radio source cannot be opened or read (missing file, bad header, no dongle)."""


class CaptureError(SdrAssetsError):
    """The capture service cannot start or keep running."""


class StoreError(SdrAssetsError):
    """A database cannot be opened, written or read as expected."""


class PartitionNotHeldError(StoreError):
    """A requested time window is no longer (or not yet) held by the hot database."""


class ModelError(SdrAssetsError):
    """Training, export or inference of the detector failed."""


class DecodeError(SdrAssetsError):
    """An external decoder (rtl_433) is missing, refused its input or failed while decoding."""


class TooLargeError(SdrAssetsError):
    """A request asks for more than a configured limit allows; the message says the limit and
    how to narrow the request."""


class ReplicaError(SdrAssetsError):
    """The snapshot replica (S3-compatible object storage) refused or could not be reached."""
