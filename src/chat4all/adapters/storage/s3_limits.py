"""S3's multipart limits, which bound how an upload's chunks can be joined server-side.

Kept apart, with no imports, so that the settings can check the chunk size against them without
loading boto3.
"""

# Every part of a multipart upload but the last must be at least this big.
MIN_PART_SIZE = 5 * 1024 * 1024
MAX_PARTS = 10_000
