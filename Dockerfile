# syntax=docker/dockerfile:1
# hmis-sap-bridge. Build: docker build -t hmis-sap-bridge .
#   docker run --rm --env-file .env hmis-sap-bridge migrate   # once per release
#   docker run -d  --env-file .env -p 8000:8000 hmis-sap-bridge   # any number of replicas

# --- build: wheels and the virtualenv; nothing of this stage but /opt/venv ships ----------
FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python -m venv /opt/venv
COPY pyproject.toml README.md constraints.txt ./
COPY app ./app
COPY sapsim ./sapsim
RUN /opt/venv/bin/pip install --no-cache-dir -c constraints.txt . \
 && /opt/venv/bin/pip uninstall --yes pip setuptools wheel

# --- runtime: slim base, no compilers, no pip in the venv, a non-root user ---------------
FROM python:3.11-slim-bookworm AS runtime
RUN groupadd --system --gid 10001 bridge \
 && useradd --system --uid 10001 --gid bridge --home-dir /srv --no-create-home bridge
COPY --from=build /opt/venv /opt/venv
WORKDIR /srv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    BRIDGE_LOG_FORMAT=json
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/health/live', timeout=4).status == 200 else 1)"]
# `bridge migrate` is its own step (a one-off container per release), never run at start-up.
ENTRYPOINT ["bridge"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
