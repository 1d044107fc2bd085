FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 DATA_DIR=/data
WORKDIR /app
COPY pyproject.toml ./
COPY config ./config
COPY moderation ./moderation
COPY labelers ./labelers
COPY templates ./templates
COPY static ./static
COPY manage.py openapi.yaml ./
RUN pip install --no-cache-dir . && useradd --create-home app && mkdir -p /data/media \
    && chown -R app /data
USER app
EXPOSE 8000
CMD ["gunicorn", "config.wsgi", "--bind", "0.0.0.0:8000", "--workers", "4"]
