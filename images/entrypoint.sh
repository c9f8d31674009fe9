#!/bin/sh
# The services' entry point in their image (under tini, see ../Dockerfile):
# `python -m services.$DEDUP_IMAGE_SERVICE`, its HTTP port on all interfaces unless
# DEDUP_<SERVICE>_HTTP_HOST says otherwise (the chart sets it).
set -eu
service="${DEDUP_IMAGE_SERVICE:?DEDUP_IMAGE_SERVICE: the image was built without SERVICE}"
host_var="DEDUP_$(printf '%s' "$service" | tr '[:lower:]' '[:upper:]')_HTTP_HOST"
eval "export $host_var=\"\${$host_var:-0.0.0.0}\""
exec python -m "services.$service" "$@"
