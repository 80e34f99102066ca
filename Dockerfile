# One image for every Tuskbase process: `tuskbase serve` (API, the default), `worker`, `feed`, `migrate`.
#
#   docker build -t tuskbase:0.1.0 .
#   docker run --rm --env-file .env tuskbase:0.1.0 migrate
#
# A regular install (`pip install .`): the packages go to site-packages and carry the platform migrations (sql/)
# and policies (policies/) as package data (see setup.py), so the sources are deleted once installed and nothing
# at run time can depend on them. /opt/tuskbase keeps the example app (examples/todo, which the chart's values
# suggest as an app dir). Everything there belongs to root and is read-only for the process, which runs as the
# unprivileged user 10001.

FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

# tini: PID 1 that forwards SIGTERM to the server and reaps children (granian and dramatiq fork workers).
RUN apt-get update \
    && apt-get install -y --no-install-recommends tini \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 tuskbase \
    && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/tuskbase --no-create-home \
        --shell /usr/sbin/nologin tuskbase \
    && install -d -o 10001 -g 10001 -m 0750 /var/lib/tuskbase

WORKDIR /opt/tuskbase

# Dependencies first, in their own layer: it is rebuilt only when pyproject.toml changes.
COPY pyproject.toml README.md ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# The whole context: .dockerignore lets in only the sources, sql/, policies/ and examples/ (a folder with no
# file yet, such as policies/ today, is absent from a clone, so it cannot be named in a COPY of its own).
# pip compiles the installed modules to bytecode. The lint, run outside the sources once they are gone, fails
# the build if the installed package does not find its migrations.
COPY . ./
RUN pip install --no-deps . \
    && rm -rf build *.egg-info setup.py platform workers sql policies \
    && cd / \
    && tuskbase --help > /dev/null \
    && tuskbase policies lint

# Containers reach each other by name, so the API listens on every interface; data_dir holds what a
# process generates (keys it was not given, local storage) and is the only place it writes.
# HOME is the user's folder whatever uid runs the image: libpq-style clients (asyncpg) look for
# ~/.postgresql/postgresql.key, and a HOME they may not read (/root) makes every connection fail.
ENV HOME=/var/lib/tuskbase \
    TUSKBASE_HOST=0.0.0.0 \
    TUSKBASE_PORT=54321 \
    TUSKBASE_DATA_DIR=/var/lib/tuskbase \
    TUSKBASE_LOG_FORMAT=json

USER 10001:10001
EXPOSE 54321

ENTRYPOINT ["tini", "--", "tuskbase"]
CMD ["serve"]
