# A stand-in for the public python:3.11-slim-bookworm, built only from Debian's own
# packages, for machines that cannot pull from an image registry. scripts/images.py
# builds it on a `debootstrap --variant=minbase bookworm` import (DEBIAN) and passes it
# to docker/Dockerfile as BASE. It offers what the images rely on from python:3.11-slim:
# python3/python at /usr/local/bin, the venv module (ensurepip), CA certificates, C.UTF-8.
ARG DEBIAN=debian:bookworm-slim
FROM ${DEBIAN}
# DL3008 (pin apt versions): bookworm replaces versions with each point/security release,
# so exact pins would break builds; the release itself is fixed (bookworm).
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3.11 python3.11-venv ca-certificates \
 && ln -s /usr/bin/python3.11 /usr/local/bin/python3 \
 && ln -s /usr/bin/python3.11 /usr/local/bin/python \
 && rm -rf /var/lib/apt/lists/*
ENV LANG=C.UTF-8
CMD ["python3"]
