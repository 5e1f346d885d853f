# The load generator image: the official Locust image plus this kit, its scenarios, profiles and
# baselines. One image plays every role in docker-compose.yml: the reference platform, the Locust
# master and the workers. See docs/docker.md.
#
#   docker build -t loadkit .
#   docker run --rm loadkit --version        # the entrypoint stays Locust's own: `locust`
FROM locustio/locust:2.47.0

# The base image runs Locust from a virtualenv on PATH, owned by root, as the unprivileged user
# "locust" (its Python is 3.12/3.13 depending on the release; the kit needs >= 3.10). Install the
# kit into that same interpreter: `python -m pip` of the python on PATH, never a bare `pip`, which
# can belong to the system Python and install where Locust never looks (a uv-made virtualenv
# may ship without pip, hence ensurepip). As root, because the virtualenv is root's.
USER root
WORKDIR /tmp/loadkit-build
COPY pyproject.toml README.md ./
COPY src/ src/
RUN (python -m pip --version >/dev/null 2>&1 || python -m ensurepip --upgrade) \
    && python -m pip install --no-cache-dir . \
    && rm -rf /tmp/loadkit-build

# Installed non-editable, the kit would look for these next to site-packages: tell it where they are.
COPY locustfiles/ /loadkit/locustfiles/
COPY shapes/ /loadkit/shapes/
COPY baselines/ /loadkit/baselines/
ENV LOADKIT_LOCUSTFILES_DIR=/loadkit/locustfiles \
    LOADKIT_SHAPES_DIR=/loadkit/shapes \
    LOADKIT_BASELINES_DIR=/loadkit/baselines \
    LOADKIT_RESULTS_DIR=/results

# Fail the build, not the first run, if Locust's own interpreter cannot load a scenario and a
# profile with the kit (wrong interpreter, wrong Locust, missing file).
RUN python -c "import locust, loadkit; assert locust.__version__.startswith('2.47.'), locust.__version__" \
    && locust -f /loadkit/locustfiles/health.py,/loadkit/shapes/smoke.py --list \
    && mkdir -p /results && chown locust /results

WORKDIR /loadkit
USER locust
# 8089 web UI, 5557 master <-> workers, 3000 the reference platform (python -m loadkit.platform).
EXPOSE 8089 5557 3000
ENTRYPOINT ["locust"]
