"""Loads the shipped default price table, so a new install prices events at once."""

from django.db import migrations


def load_default_prices(apps, schema_editor):
    from finops.models import BEGINNING_OF_TIME
    from finops.pricing import DEFAULT_PRICE_FILE, load_price_file, parse_litellm_prices

    ModelPrice = apps.get_model("finops", "ModelPrice")
    parsed = parse_litellm_prices(load_price_file(DEFAULT_PRICE_FILE))
    existing = set(ModelPrice.objects.values_list("model", flat=True))
    ModelPrice.objects.bulk_create(
        [
            ModelPrice(
                model=name, effective_from=BEGINNING_OF_TIME, source="default table", **fields
            )
            for name, fields in parsed.prices.items()
            if name not in existing
        ]
    )


class Migration(migrations.Migration):
    dependencies = [("finops", "0001_initial")]

    operations = [migrations.RunPython(load_default_prices, migrations.RunPython.noop)]
