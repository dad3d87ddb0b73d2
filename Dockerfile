# dli-batch-monitor image. Two stages: the build stage installs the package into a virtualenv;
# the final stage copies only that virtualenv onto a clean base (no pip cache, no build tools,
# no sources). CI substitutes a locally built base with --build-arg BASE=...
ARG BASE=python:3.12-slim

FROM ${BASE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python3 -m venv /opt/venv
COPY pyproject.toml README.md ./
COPY requirements/runtime.txt ./requirements/runtime.txt
COPY monitor ./monitor
RUN /opt/venv/bin/pip install --no-cache-dir -c requirements/runtime.txt . \
    && /opt/venv/bin/pip uninstall --yes pip \
    && /opt/venv/bin/dli-monitor --version

FROM ${BASE}
LABEL org.opencontainers.image.title="dli-batch-monitor" \
      org.opencontainers.image.description="Watches Huawei Cloud DLI Spark batch jobs and alerts on state changes." \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN useradd --system --uid 10001 --user-group --no-create-home --home-dir /var/lib/dli-monitor \
        --shell /usr/sbin/nologin dli-monitor \
    && mkdir -p /var/lib/dli-monitor /etc/dli-monitor \
    && chown 10001:10001 /var/lib/dli-monitor
COPY --from=build /opt/venv /opt/venv
WORKDIR /var/lib/dli-monitor
USER 10001:10001
# The SQLite state (config.yaml's state.path); mount a persistent volume here.
VOLUME ["/var/lib/dli-monitor"]
# Metrics, /healthz and /readyz (server.listen).
EXPOSE 9108
# Exec form: Python is PID 1, receives SIGTERM and drains within shutdown_timeout.
ENTRYPOINT ["dli-monitor"]
CMD ["run", "--config", "/etc/dli-monitor/config.yaml"]
