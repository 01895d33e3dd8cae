# The polystream services (API, sinks, auditor, simulator, CLI) as one image; docker-compose.yml
# runs one container per role. Dependencies come from the hash-locked requirements.lock.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/polystream
COPY requirements.lock /tmp/requirements.lock
RUN /opt/polystream/bin/pip install --require-hashes -r /tmp/requirements.lock
COPY pyproject.toml README.md LICENSE /src/
COPY src /src/src
RUN /opt/polystream/bin/pip install --no-deps /src

FROM ${PYTHON_IMAGE}
# Not root: nothing in the services needs it.
RUN useradd --system --uid 10001 --home-dir /var/lib/polystream --create-home polystream
COPY --from=build /opt/polystream /opt/polystream
ENV PATH=/opt/polystream/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    POLYSTREAM_ENVIRONMENT=prod \
    POLYSTREAM_STACK__HOME=/var/lib/polystream/stack
USER polystream
WORKDIR /var/lib/polystream
EXPOSE 8000
ENTRYPOINT ["polystream"]
CMD ["--help"]
