# syntax=docker/dockerfile:1
# tocsin: multi-stage, slim, non-root. Environment variables alone configure it (README
# "Environment-only configuration": REDIS_URL, SLACK_BOT_TOKEN, TOCSIN_PROVIDERS, ...); for a
# config file, mount it (e.g. at /etc/tocsin/tocsin.yaml) and set TOCSIN_CONFIG to its path.

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
# Listen on the container's every interface, so a published port reaches the server; the
# HEALTHCHECK asks TOCSIN_SERVER_PORT (change the port there, not in a config file).
ENV PATH="/opt/tocsin/bin:$PATH" \
    PYTHONUNBUFFERED=1 \
    TOCSIN_SERVER_HOST=0.0.0.0 \
    TOCSIN_SERVER_PORT=8080
WORKDIR /var/lib/tocsin
USER 10001:10001
EXPOSE 8080
# Exit 0 while /healthz answers 200, 1 otherwise; no proxy is asked, whatever HTTP_PROXY says.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request as u; port = os.environ.get('TOCSIN_SERVER_PORT', '8080'); answer = u.build_opener(u.ProxyHandler({})).open(f'http://127.0.0.1:{port}/healthz', timeout=4); sys.exit(0 if answer.status == 200 else 1)"]
ENTRYPOINT ["tocsin"]
CMD ["run"]
