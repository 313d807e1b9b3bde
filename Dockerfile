# ctgwatch worker / gateway image (CPU; inference runs in the Triton container).
FROM python:3.11-slim
ENV PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1
WORKDIR /app
# torch first and pinned, so the project's range does not pull another build.
# For a smaller image, install the CPU wheel of the same version from PyTorch's CPU index.
RUN pip install torch==2.13.0
COPY pyproject.toml README.md ./
COPY stream ./stream
COPY detectors ./detectors
COPY models ./models
COPY infra ./infra
RUN pip install . && useradd --create-home ctgwatch && mkdir -p /var/lib/ctgwatch && chown ctgwatch /var/lib/ctgwatch
USER ctgwatch
CMD ["ctgwatch", "--help"]
