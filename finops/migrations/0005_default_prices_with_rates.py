"""Loads the shipped default price table, with every rate, for models that have no price.

A new install prices events at once. An install that already has rows for these models
keeps them (a row is never edited): docs/pricing.md says how to import the rates it
lacks and re-price the open months.
"""

from django.db import migrations


def load_default_prices(apps, schema_editor):
    from finops.models import BEGINNING_OF_TIME
    from finops.pricing import (
        DEFAULT_PRICE_FILE,
        load_price_file,
        parse_litellm_prices,
        price_rows_create,
    )

    ModelPrice = apps.get_model("finops", "ModelPrice")
    PriceRate = apps.get_model("finops", "PriceRate")
    parsed = parse_litellm_prices(load_price_file(DEFAULT_PRICE_FILE))
    existing = set(ModelPrice.objects.values_list("model", flat=True))
    # Only the fields the row has at this migration: the parser is today's code.
    known = {f.name for f in ModelPrice._meta.fields}
    rows = [
        (
            ModelPrice(
                model=name,
                effective_from=BEGINNING_OF_TIME,
                source="default table",
                **{k: v for k, v in price.fields.items() if k in known},
            ),
            price,
        )
        for name, price in parsed.prices.items()
        if name not in existing
    ]
    price_rows_create(rows=rows, price_model=ModelPrice, rate_model=PriceRate)


class Migration(migrations.Migration):
    dependencies = [("finops", "0004_price_rates")]

    operations = [migrations.RunPython(load_default_prices, migrations.RunPython.noop)]
