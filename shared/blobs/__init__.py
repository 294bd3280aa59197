"""The blob store port and its adapters (local folder and S3 through the minio SDK)."""
