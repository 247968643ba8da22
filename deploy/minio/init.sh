#!/bin/sh
# Creates the lakehouse bucket (private) and a user whose policy allows that bucket only.
set -eu
mc alias set local http://minio:9000 "$MINIO_ROOT_USER" "$MINIO_ROOT_PASSWORD"
mc mb --ignore-existing "local/$LAKEHOUSE_BUCKET"
mc anonymous set none "local/$LAKEHOUSE_BUCKET"
sed "s/\${LAKEHOUSE_BUCKET}/$LAKEHOUSE_BUCKET/g" /init/lakehouse-policy.json > /tmp/lakehouse-policy.json
mc admin policy create local lakehouse-rw /tmp/lakehouse-policy.json
mc admin user add local "$LAKEHOUSE_S3_ACCESS_KEY_ID" "$LAKEHOUSE_S3_SECRET_ACCESS_KEY"
# attach fails when the policy is already attached (a re-run): then it must show on the user
mc admin policy attach local lakehouse-rw --user "$LAKEHOUSE_S3_ACCESS_KEY_ID" \
  || mc admin user info local "$LAKEHOUSE_S3_ACCESS_KEY_ID" | grep -q lakehouse-rw
echo "bucket $LAKEHOUSE_BUCKET ready; user $LAKEHOUSE_S3_ACCESS_KEY_ID limited to it"
