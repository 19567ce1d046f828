# syntax=docker/dockerfile:1
# Build stage: the locked dependencies, then the project installed as a wheel (not editable), so
# the package carries its migrations (common/db/migrations) and the image needs no source tree.
FROM python:3.11-slim AS build
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PROJECT_ENVIRONMENT=/app/.venv
RUN pip install --no-cache-dir uv==0.13.9
WORKDIR /src
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project
COPY common ./common
COPY services ./services
COPY migrations ./migrations
RUN uv sync --frozen --no-dev --no-editable

# Runtime stage: the virtual environment alone, run by an unprivileged user from an empty directory.
FROM python:3.11-slim AS runtime
RUN useradd --system --uid 10001 --home-dir /app whoopsync
COPY --from=build --chown=whoopsync:whoopsync /app/.venv /app/.venv
WORKDIR /app
ENV PATH="/app/.venv/bin:$PATH" PYTHONUNBUFFERED=1 WHOOPSYNC_LOG_FORMAT=json
USER whoopsync
EXPOSE 8001 8002 8099
ENTRYPOINT ["whoop-sync"]
CMD ["api", "--host", "0.0.0.0"]
