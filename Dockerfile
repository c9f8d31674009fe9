# One image per service, all from this file: SERVICE names the service (services/<SERVICE>),
# PORT its HTTP port (/metrics, /healthz, /readyz; DEDUP_<SERVICE>_HTTP_PORT's default).
# Build from the repository root (the build context); `make images` builds the base and
# all six (images/build.sh), e.g.
#   podman build --format docker --build-arg SERVICE=hasher --build-arg PORT=9101 \
#     -t localhost/dedup/hasher:0.1.0 .
# PYTHON_IMAGE: Debian bookworm with python3 (3.11), python3-venv, tini and ca-certificates,
# as images/base.sh makes it without any registry (or your registry's copy of it).
ARG PYTHON_IMAGE=localhost/dedup-base:bookworm-0.1.0

# ---- builder: the project and its pinned dependencies in a venv ------------------------
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# The dependencies first, in a layer of their own: a change of the sources reinstalls only
# the project. Binary wheels only: nothing is compiled, no compiler is needed. Then out go
# Milvus Lite (the local stack's embedded server: the services reach a Milvus server), and
# the dependencies' test suites and type stubs (never run, never read).
COPY pyproject.toml requirements.lock ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" >/tmp/dependencies.txt \
    && pip install --only-binary=:all: -c requirements.lock -r /tmp/dependencies.txt \
    && pip uninstall --yes milvus-lite \
    && find /opt/venv/lib -depth -type d -name tests -path '*/site-packages/*' -exec rm -rf {} + \
    && find /opt/venv/lib -name '*.pyi' -delete
COPY README.md ./
COPY libs ./libs
COPY services ./services
COPY apps ./apps
# The project itself, then the installer goes: the runtime installs nothing.
RUN pip install --no-deps -c requirements.lock . \
    && pip uninstall --yes pip

# ---- runtime: the venv, no build tools, a non-root user --------------------------------
# The six images share every layer up to the ARGs below (built once, then cached); only
# the last, empty-sized ones name the service.
FROM ${PYTHON_IMAGE}
# /app exists in the image: podman's WORKDIR alone does not make it, and a read-only root
# filesystem (the chart's) cannot get it at start.
RUN groupadd --system --gid 10001 dedup \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin dedup \
    && mkdir /app
COPY --from=builder /opt/venv /opt/venv
COPY images/entrypoint.sh /usr/local/bin/dedup-service
ARG SERVICE
ARG PORT
# A SERVICE that names no service fails the build, not the pod. Being a RUN, this step also
# keys podman 4.3's layer cache on the build args: without it the ENV below was taken from
# the cache of the first service built.
RUN /opt/venv/bin/python -c "import importlib.util as u, sys; sys.exit(u.find_spec(f'services.{sys.argv[1]}.__main__') is None or not sys.argv[2].isdigit())" "${SERVICE}" "${PORT}"
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DEDUP_IMAGE_SERVICE=${SERVICE} \
    DEDUP_IMAGE_PORT=${PORT}
LABEL org.opencontainers.image.title="dedup-${SERVICE}"
WORKDIR /app
USER 10001:10001
# /metrics, /healthz, /readyz (DEDUP_<SERVICE>_HTTP_PORT; the chart sets 8080).
EXPOSE ${PORT}
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; s = os.environ['DEDUP_IMAGE_SERVICE'].upper(); urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get(f'DEDUP_{s}_HTTP_PORT', os.environ['DEDUP_IMAGE_PORT']), timeout=3)"]
STOPSIGNAL SIGTERM
# tini is PID 1: it forwards SIGTERM to the service and reaps. A process that is PID 1
# itself never gets a signal it has no handler for, so a SIGTERM during the imports would
# be lost and the pod killed at the end of its grace period.
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/dedup-service"]
