FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN useradd --system --uid 10001 --user-group --home-dir /app --shell /usr/sbin/nologin smartpractice \
    && mkdir -p /data \
    && chown smartpractice:smartpractice /data

WORKDIR /app
COPY . /app
# A regular install: templates, static files, catalogs and migrations are inside the
# package (tests/test_wheel.py), so the image needs nothing of the source tree at run time.
RUN pip install --no-cache-dir .

ENV SMARTPRACTICE_DATA_DIR=/data \
    SMARTPRACTICE_HOST=0.0.0.0

USER smartpractice
EXPOSE 8080
CMD ["smartpractice", "serve"]
