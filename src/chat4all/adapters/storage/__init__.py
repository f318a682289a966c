"""Where upload bytes live: the local disk (embedded profile) or an S3-compatible store (distributed).

Import the adapter you need from its module (`.local` or `.s3`); the S3 one pulls in boto3,
which the embedded profile does not need to load.
"""
