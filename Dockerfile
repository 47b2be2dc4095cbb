# syntax=docker/dockerfile:1
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md alembic.ini ./
COPY app ./app
COPY sapsim ./sapsim
COPY migrations ./migrations
RUN python -m venv /opt/venv && /opt/venv/bin/pip install --no-cache-dir .

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 bridge
COPY --from=build /opt/venv /opt/venv
WORKDIR /srv
COPY --chown=bridge alembic.ini ./
COPY --chown=bridge migrations ./migrations
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1
USER bridge
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --retries=3 \
  CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/health/live', timeout=4).status == 200 else 1)"
# Run `bridge migrate` once per release as its own step, not in every container.
CMD ["bridge", "serve", "--host", "0.0.0.0", "--port", "8000"]
