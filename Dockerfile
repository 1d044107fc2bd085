# One image for web, worker and beat (docker-compose.yml). Dependencies come from the lock
# file (exact versions, checked against their hashes); `python3 dev.py lock` updates it.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DATA_DIR=/data \
    MEDIA_ROOT=/data/media \
    STATIC_ROOT=/app/static-collected
WORKDIR /app

# The lock first, alone: code changes do not reinstall the dependencies. boto3 (~34 MB) only
# for MEDIA_STORAGE=s3: docker build --build-arg WITH_S3=true (requirements/s3.txt).
ARG WITH_S3=false
# pdqhash (PDQ for the hash banks) is published as source only: a C++ compiler builds it,
# and leaves the image with the build.
COPY requirements/base.txt requirements/s3.txt requirements/
RUN apt-get update && apt-get install -y --no-install-recommends g++ \
    && pip install --no-cache-dir --require-hashes --no-deps -r requirements/base.txt \
    && if [ "$WITH_S3" = true ]; then \
      pip install --no-cache-dir --require-hashes --no-deps -r requirements/s3.txt; fi \
    && apt-get purge -y g++ && apt-get autoremove -y && rm -rf /var/lib/apt/lists/*

COPY pyproject.toml manage.py openapi.yaml gunicorn.conf.py ./
COPY config ./config
COPY lib ./lib
COPY moderation ./moderation
COPY labelers ./labelers
COPY audit ./audit
COPY templates ./templates
COPY static ./static

# Static files collected into the image (whitenoise serves them), under hashed names with
# gzipped copies and a manifest (lib/staticfiles.py). The build-time settings are throwaway:
# no secret, database or data folder of the build stays in the image.
RUN SECRET_KEY=collectstatic-only DATABASE_URL=sqlite:////tmp/build/db.sqlite3 \
      DATA_DIR=/tmp/build python manage.py collectstatic --noinput \
    && rm -rf /tmp/build \
    && useradd --system --create-home --uid 10001 app \
    && mkdir -p /data/media \
    && chown -R app:app /data

# Not root: a compromise of the web or a worker process cannot rewrite the code or the image.
USER app
EXPOSE 8000
# The process answers (web). compose.yml gives worker and beat checks of their own.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]
CMD ["gunicorn", "config.wsgi", "--bind", "0.0.0.0:8000", "--workers", "4", "--access-logfile", "-"]
