"""Where upload bytes live: the local disk (embedded profile) or an S3-compatible store (distributed)."""

from chat4all.adapters.storage.local import LocalFileStorage
from chat4all.adapters.storage.s3 import S3FileStorage, S3Settings, make_s3_client

__all__ = ["LocalFileStorage", "S3FileStorage", "S3Settings", "make_s3_client"]
