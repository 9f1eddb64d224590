FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 FINOPS_VAR_DIR=/app/var
WORKDIR /app
COPY pyproject.toml README.md ./
COPY config ./config
COPY finops ./finops
COPY ingestion ./ingestion
COPY billing ./billing
COPY statements ./statements
COPY portal ./portal
COPY console ./console
COPY ops ./ops
COPY finops_client ./finops_client
RUN pip install --no-cache-dir .
COPY manage.py gunicorn.conf.py ./
COPY templates ./templates
RUN SECRET_KEY=build python manage.py collectstatic --noinput -v0
EXPOSE 8000
# Stock gunicorn (sync workers); WEB_CONCURRENCY sets the number of workers, one per core.
# docker-compose.yml runs this image twice, as the web pool and as the guard's pool,
# behind nginx (deploy/nginx.conf.template).
CMD ["gunicorn", "config.wsgi:application", "--bind", "0.0.0.0:8000"]
