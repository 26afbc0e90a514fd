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
RUN pip install .
RUN useradd --create-home em && mkdir -p /data && chown em /data
USER em
ENV EM_DATA_DIR=/data EM_API_TOKENS_FILE=/data/tokens.json
ENTRYPOINT ["engagement-monitor"]
CMD ["worker"]
