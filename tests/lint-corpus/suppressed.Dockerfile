FROM python:3.12-slim
# The index is a local devpi carried in the bundle.
# offline-build: ignore=pip-install
RUN pip install --index-url http://127.0.0.1:3141/root/pypi/+simple/ -r /dev/null
# offline-build: ignore=download,mutable-tag
RUN curl -fsSL http://127.0.0.1:8000/tool -o /usr/local/bin/tool
