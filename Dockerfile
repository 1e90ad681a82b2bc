# syntax=docker/dockerfile:1
# tocsin: multi-stage, slim, non-root. Configure with environment variables (REDIS_URL,
# SLACK_BOT_TOKEN, ...) and/or a config file mounted at /etc/tocsin/tocsin.yaml.

FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY handlers ./handlers
COPY config ./config
RUN python -m venv /opt/tocsin \
    && /opt/tocsin/bin/pip install --no-cache-dir .

FROM python:3.11-slim
LABEL org.opencontainers.image.title="tocsin" \
      org.opencontainers.image.description="Incident alerting for AI-provider outages"
RUN groupadd --system --gid 10001 tocsin \
    && useradd --system --uid 10001 --gid tocsin --home-dir /var/lib/tocsin --create-home tocsin
COPY --from=build /opt/tocsin /opt/tocsin
ENV PATH="/opt/tocsin/bin:$PATH" \
    PYTHONUNBUFFERED=1 \
    TOCSIN_CONFIG=/etc/tocsin/tocsin.yaml
WORKDIR /var/lib/tocsin
USER 10001:10001
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4).status == 200 else 1)"]
ENTRYPOINT ["tocsin"]
CMD ["run"]
