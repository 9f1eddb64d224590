"""Kill switches are `billing.KillSwitch` rows now (per tenant, or staff's for every
tenant); billing 0013 carried the tripped feature-wide switches over."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0013_kill_switch_rows"),
        ("ingestion", "0005_event_api_key"),
    ]

    operations = [
        migrations.RemoveField(model_name="feature", name="kill_switch_active_since"),
    ]
