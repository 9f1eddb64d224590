"""The feature-wide kill switch (`ingestion.Feature.kill_switch_active_since`) becomes a
`KillSwitch` row for every tenant; ingestion 0006 then drops the field."""

from django.db import migrations

CARRIED_OVER = "Carried over from the feature-wide switch."


def carry_over(apps, schema_editor):
    # Only switches the guard obeyed: it ignored a tripped switch whose feature had its
    # kill switch turned off.
    Feature = apps.get_model("ingestion", "Feature")
    KillSwitch = apps.get_model("billing", "KillSwitch")
    tripped = Feature.objects.filter(kill_switch_active_since__isnull=False,
                                     kill_switch_enabled=True)  # fmt: skip
    KillSwitch.objects.bulk_create(
        KillSwitch(
            feature=feature,
            tenant=None,
            automatic=False,
            reason=CARRIED_OVER,
            tripped_at=feature.kill_switch_active_since,
        )
        for feature in tripped
        if not KillSwitch.objects.filter(
            feature=feature, tenant=None, cleared_at__isnull=True
        ).exists()
    )


def carry_back(apps, schema_editor):
    Feature = apps.get_model("ingestion", "Feature")
    KillSwitch = apps.get_model("billing", "KillSwitch")
    for switch in KillSwitch.objects.filter(tenant=None, cleared_at__isnull=True):
        Feature.objects.filter(id=switch.feature_id).update(
            kill_switch_active_since=switch.tripped_at
        )
    KillSwitch.objects.filter(reason=CARRIED_OVER).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0012_budget_scopes_rate_limits_kill_switches"),
        ("ingestion", "0005_event_api_key"),
    ]

    operations = [migrations.RunPython(carry_over, carry_back)]
