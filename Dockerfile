# One image for every process of the product: `engagement-monitor worker|api|simulate|...`.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY engagement_monitor ./engagement_monitor
COPY models ./models
COPY counting ./counting
COPY streams ./streams
COPY agents ./agents
COPY read_api ./read_api
COPY simulator ./simulator
COPY bench ./bench
# The hot modules are compiled with mypyc (engagement_monitor/native.py), which needs a C
# compiler and mypy's own configuration in pyproject.toml: so the image runs from /app.
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
RUN pip install -e . 'mypy>=1.10' 'setuptools>=77' && python -m engagement_monitor.native build
RUN useradd --create-home em && mkdir -p /data && chown em /data
USER em
ENV EM_DATA_DIR=/data EM_API_TOKENS_FILE=/data/tokens.json
ENTRYPOINT ["engagement-monitor"]
CMD ["worker"]
