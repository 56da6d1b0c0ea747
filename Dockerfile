# Threshold as a container: `docker build -t threshold .` (compose.yaml runs it with PostgreSQL and Redis).
# The image runs as an unprivileged user and writes only to its data volume (/var/lib/threshold) and /tmp,
# so it runs with a read-only root filesystem (`docker run --read-only --tmpfs /tmp ...`).

FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN python -m venv /opt/threshold && /opt/threshold/bin/pip install .

FROM python:3.11-slim-bookworm
RUN groupadd --system --gid 10001 threshold \
    && useradd --system --uid 10001 --gid threshold --home-dir /var/lib/threshold --no-create-home \
       --shell /usr/sbin/nologin threshold \
    && mkdir -p /var/lib/threshold \
    && chown threshold:threshold /var/lib/threshold \
    && chmod 0700 /var/lib/threshold
COPY --from=build /opt/threshold /opt/threshold
ENV PATH=/opt/threshold/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    THRESHOLD_DATA_DIR=/var/lib/threshold
USER 10001:10001
WORKDIR /var/lib/threshold
VOLUME ["/var/lib/threshold"]
EXPOSE 8400
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8400/healthz', timeout=2)"]
ENTRYPOINT ["threshold"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8400", "--workers", "2"]
