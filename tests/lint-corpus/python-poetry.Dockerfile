FROM python:3.11
RUN pip install poetry==1.8.3
WORKDIR /srv
COPY pyproject.toml poetry.lock ./
RUN poetry config virtualenvs.create false \
    && poetry install --no-root --only main
COPY . .
