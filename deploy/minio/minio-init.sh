#!/bin/sh
# One-shot after MinIO is healthy (docker-compose.yml service minio-init): the evidence bucket, and the
# platform's own MinIO user whose policy (bucket-policy.json) reaches that bucket only. Re-runnable.
set -eu
mc alias set local http://minio:9000 "$MINIO_ROOT_USER" "$(cat /run/secrets/minio_root_password)" >/dev/null
if [ "${S3_OBJECT_LOCK:-false}" = "true" ]; then
  mc mb --ignore-existing --with-lock "local/$S3_BUCKET"  # retention of approved evidence (S3_OBJECT_LOCK)
else
  mc mb --ignore-existing "local/$S3_BUCKET"
fi
sed "s/campaign-evidence/$S3_BUCKET/g" /etc/campaign/bucket-policy.json > /tmp/policy.json
mc admin policy create local campaign-platform /tmp/policy.json
mc admin user add local "$S3_ACCESS_KEY" "$(cat /run/secrets/s3_secret_key)"
# attaching an already attached policy is an error in mc: look first
if ! mc admin user info local "$S3_ACCESS_KEY" | grep -q campaign-platform; then
  mc admin policy attach local campaign-platform --user "$S3_ACCESS_KEY"
fi
echo "bucket $S3_BUCKET and user $S3_ACCESS_KEY (policy campaign-platform) ready"
