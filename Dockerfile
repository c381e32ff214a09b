# One image for both roles: `broker api` (the default) and `broker worker`.
FROM python:3.11-slim

# The uv that wrote uv.lock; override with --build-arg UV_VERSION=...
ARG UV_VERSION=0.13.9
RUN pip install --no-cache-dir "uv==${UV_VERSION}"

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never

WORKDIR /app

# Dependencies first, so source edits do not reinstall them.
COPY pyproject.toml uv.lock ./
RUN uv sync --frozen --no-dev --no-install-project

COPY README.md ./
COPY broker ./broker
COPY worker ./worker
COPY agent ./agent
RUN uv sync --frozen --no-dev

RUN useradd --system --uid 10001 --no-create-home broker
USER broker

ENV PATH=/app/.venv/bin:$PATH
EXPOSE 8000
CMD ["broker", "api", "--host", "0.0.0.0", "--port", "8000"]
