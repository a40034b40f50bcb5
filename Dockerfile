FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN useradd --system --uid 10001 --user-group --home-dir /app --shell /usr/sbin/nologin smartpractice \
    && mkdir -p /data \
    && chown smartpractice:smartpractice /data

WORKDIR /app
COPY . /app
# Editable install: the server reads templates/ and static/ from beside the package.
RUN pip install --no-cache-dir -e .

ENV SMARTPRACTICE_DATA_DIR=/data \
    SMARTPRACTICE_HOST=0.0.0.0

USER smartpractice
EXPOSE 8080
CMD ["smartpractice", "serve"]
