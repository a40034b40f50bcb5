# An exact Python and Debian release, as the compose file's images: `3.11-slim` would follow
# every patch release and the next Debian without a change here.
FROM python:3.11.14-slim-trixie

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
# gcc builds the relay's C module (smartpractice/rtc/_datagrams.c) and goes again.
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && pip install --no-cache-dir . \
    && apt-get purge -y --auto-remove gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*

ENV SMARTPRACTICE_DATA_DIR=/data \
    SMARTPRACTICE_HOST=0.0.0.0

USER smartpractice
EXPOSE 8080
CMD ["smartpractice", "serve"]
