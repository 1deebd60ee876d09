# syntax=docker/dockerfile:1
# The lens container image: `docker build -t lens:0.1.0 .` from the repository root.
#
#   docker run --rm lens:0.1.0                                   # lens --help
#   docker run --rm -v "$PWD:/work" lens:0.1.0 run scenarios/quickstart.yaml -o results.json
#
# Two stages: the first builds the wheel of this checkout (the same wheel `make dist`
# builds), the second installs it, without any dev extra, into a slim image that runs as an
# unprivileged user. The base image is pinned by version; pin it by digest too
# (python:3.12.11-slim-bookworm@sha256:...) once you have checked that digest yourself.
# Kubernetes manifests: deploy/k8s/ (see docs/kubernetes.md).

FROM python:3.12.11-slim-bookworm AS build
WORKDIR /src
# Exactly what the wheel is built from (tests/dist/test_wheel.py builds it from the same).
COPY pyproject.toml README.md ./
COPY lens ./lens
RUN pip wheel --no-cache-dir --disable-pip-version-check --no-deps --wheel-dir /dist .

FROM python:3.12.11-slim-bookworm
# Extras to install with lens, e.g. --build-arg LENS_EXTRAS=report for `lens report` and
# the html exporter (matplotlib). Never dev: the image runs lens, it does not test it.
ARG LENS_EXTRAS=""
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# A fixed UID/GID, so Kubernetes' runAsNonRoot can verify it and fsGroup can match it
# (deploy/k8s/ uses 10001 too).
RUN groupadd --system --gid 10001 lens \
    && useradd --system --uid 10001 --gid 10001 --home-dir /work --create-home \
       --shell /usr/sbin/nologin lens
# The wheel comes in through a bind mount: it never becomes a layer of the image. pip
# compiles the bytecode now: at run time the root filesystem is read-only. (DL3013, pin
# versions: the wheel is this checkout's; its dependencies are resolved by its metadata.)
# hadolint ignore=DL3013
RUN --mount=type=bind,from=build,source=/dist,target=/dist \
    wheel="$(ls /dist/llm_latency_lens-*.whl)" \
    && pip install "${wheel}${LENS_EXTRAS:+[$LENS_EXTRAS]}" \
    && lens --version
USER 10001:10001
WORKDIR /work
ENTRYPOINT ["lens"]
CMD ["--help"]
