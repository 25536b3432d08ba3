# The librex-alloc image: Ray 2.60 (Python 3.11) with this project installed, for the cluster
# launcher YAMLs and KubeRay manifests in cluster_configs/ (they name it librex-alloc:0.1.0).
#
#   docker build -t librex-alloc:0.1.0 .
#   docker tag librex-alloc:0.1.0 <your-registry>/librex-alloc:0.1.0 && docker push ...
#
# The base image already has ray[default] 2.60.0 (Jobs, state API, dashboard, metrics);
# pip keeps it and adds only what the project needs beyond it (the tune extra, ortools, ...).
ARG RAY_IMAGE=rayproject/ray:2.60.0-py311
FROM ${RAY_IMAGE}

# The Ray images run as user "ray" (uid 1000, gid 100) with Python in /home/ray/anaconda3.
WORKDIR /home/ray/librex-alloc
COPY --chown=1000:100 pyproject.toml README.md ./
COPY --chown=1000:100 librex_alloc ./librex_alloc
COPY --chown=1000:100 agents ./agents
COPY --chown=1000:100 coordinator ./coordinator

# A regular (not editable) install, so the console script and the entry points of the
# subcommands are registered in the image's site-packages; the check fails the build if not.
RUN pip install --no-cache-dir ".[client]" \
    && librex-alloc --version \
    && librex-alloc run --help > /dev/null

# Token authentication is on for every process started in this image; the token itself comes
# from the cluster (a Secret on Kubernetes, a mounted ~/.ray/auth_token with the launcher).
ENV RAY_AUTH_MODE=token

WORKDIR /home/ray
